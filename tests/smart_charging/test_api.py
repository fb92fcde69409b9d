"""Sites, nested groups, a charger's site, demand-response cuts and the load view, via the API."""

from __future__ import annotations

from typing import Any

from tests.csms.api.conftest import Api
from tests.waiting import eventually


async def _load_with_limit(api: Api, site_id: str, limit: float) -> dict[str, Any]:
    load: dict[str, Any] = (await api.reader.get(f"/sites/{site_id}/load")).json()
    return load if load["limit_a"] == limit else {}


async def _charger(api: Api, charge_point_id: str) -> None:
    response = await api.operator.put(f"/chargers/{charge_point_id}", json={})
    assert response.status_code == 200, response.text


async def test_site_crud_with_nested_groups_and_a_charger(api: Api) -> None:
    created = await api.operator.post(
        "/sites", json={"site_id": "depot", "name": "Depot", "phase_limit_a": 100}
    )
    assert created.status_code == 201, created.text
    assert created.json()["phase_limit_a"] == 100
    again = await api.operator.post("/sites", json={"site_id": "depot"})
    assert again.status_code == 409

    feeder = await api.operator.put("/sites/depot/groups/feeder-1", json={"phase_limit_a": 63})
    assert feeder.status_code == 200, feeder.text
    circuit = await api.operator.put(
        "/sites/depot/groups/circuit-a", json={"parent_id": "feeder-1", "phase_limit_a": 32}
    )
    assert circuit.status_code == 200, circuit.text
    cycle = await api.operator.put(
        "/sites/depot/groups/feeder-1", json={"parent_id": "circuit-a", "phase_limit_a": 63}
    )
    assert cycle.status_code == 409, cycle.text
    unknown_parent = await api.operator.put("/sites/depot/groups/x", json={"parent_id": "nope"})
    assert unknown_parent.status_code == 409

    await _charger(api, "CP-1")
    placed = await api.operator.put(
        "/chargers/CP-1/site",
        json={"site_id": "depot", "group_id": "circuit-a", "max_current_a": 16, "priority": 2},
    )
    assert placed.status_code == 200, placed.text
    assert (await api.reader.get("/chargers/CP-1/site")).json()["group_id"] == "circuit-a"
    wrong_group = await api.operator.put(
        "/chargers/CP-1/site", json={"site_id": "depot", "group_id": "missing"}
    )
    assert wrong_group.status_code == 409
    assert (
        await api.operator.put("/chargers/NOPE/site", json={"site_id": "depot"})
    ).status_code == 409

    site = (await api.reader.get("/sites/depot")).json()
    assert {g["group_id"]: g["parent_id"] for g in site["groups"]} == {
        "feeder-1": None,
        "circuit-a": "feeder-1",
    }
    assert [c["charge_point_id"] for c in site["chargers"]] == ["CP-1"]

    updated = await api.operator.put("/sites/depot", json={"phase_limit_a": 80})
    assert updated.json()["phase_limit_a"] == 80
    assert (await api.reader.put("/sites/depot", json={})).status_code == 403
    load = await eventually(lambda: _load_with_limit(api, "depot", 80))
    assert load["sessions"] == []

    assert (await api.operator.delete("/sites/depot/groups/feeder-1")).status_code == 204
    after = (await api.reader.get("/sites/depot")).json()
    assert after["groups"] == [] and after["chargers"][0]["group_id"] is None
    assert (await api.operator.delete("/sites/depot")).status_code == 204
    assert (await api.reader.get("/sites/depot")).status_code == 404
    assert (await api.reader.get("/chargers/CP-1/site")).status_code == 404


async def test_a_demand_response_cut_lowers_the_limit_in_force_until_lifted(api: Api) -> None:
    await api.operator.post("/sites", json={"site_id": "s1", "phase_limit_a": 100})
    cut = await api.operator.post("/sites/s1/demand-response", json={"limit_a": 40})
    assert cut.status_code == 200, cut.text
    assert cut.json()["demand_response"]["limit_a"] == 40
    await eventually(lambda: _load_with_limit(api, "s1", 40))  # re-planned at once
    lifted = await api.operator.delete("/sites/s1/demand-response")
    assert lifted.json()["demand_response"] is None
    bad = await api.operator.post("/sites/s1/demand-response", json={"limit_a": -1})
    assert bad.status_code == 422
    missing = await api.operator.post("/sites/nope/demand-response", json={"limit_a": 1})
    assert missing.status_code == 404


async def test_a_sites_price_schedule_is_set_read_validated_and_removed(api: Api) -> None:
    assert (await api.operator.post("/sites", json={"site_id": "p"})).status_code == 201
    assert (await api.reader.get("/sites/p/prices")).status_code == 404
    body = {
        "time_zone": "Europe/Paris",
        "entries": [{"start": "07:00", "price": 0.3}, {"start": "22:00", "price": 0.1}],
    }
    put = await api.operator.put("/sites/p/prices", json=body)
    assert put.status_code == 200, put.text
    got = (await api.reader.get("/sites/p/prices")).json()
    assert got == {
        "time_zone": "Europe/Paris",
        "entries": [{"start": "07:00:00", "price": 0.3}, {"start": "22:00:00", "price": 0.1}],
    }
    assert (await api.reader.put("/sites/p/prices", json=body)).status_code == 403
    unknown_zone = await api.operator.put("/sites/p/prices", json=body | {"time_zone": "Mars/X"})
    assert unknown_zone.status_code == 422 and "Mars/X" in unknown_zone.text
    twice = {"entries": [{"start": "07:00", "price": 0.3}, {"start": "07:00", "price": 0.1}]}
    assert (await api.operator.put("/sites/p/prices", json=twice)).status_code == 422
    assert (await api.operator.put("/sites/nope/prices", json=body)).status_code == 404
    assert (await api.operator.delete("/sites/p/prices")).status_code == 204
    assert (await api.reader.get("/sites/p/prices")).status_code == 404


async def test_charging_needs_hook_keeps_an_operator_priority(api: Api) -> None:
    """What an EV says it needs (ISO 15118) lands in the session's preferences."""
    from datetime import UTC, datetime

    from smart_charging.service import SmartChargingService

    service = next(s for s in api.csms.app.services if isinstance(s, SmartChargingService))
    await api.csms.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-N')")
    answer = await api.operator.put(
        "/chargers/CP-N/transactions/tx-1/preferences", json={"priority": 5}
    )
    assert answer.status_code == 200, answer.text
    leaves = datetime(2030, 1, 1, 17, tzinfo=UTC)
    await service.set_charging_needs("CP-N", "tx-1", leaves, 20_000.0)
    row = await api.csms.pool.fetchrow(
        "SELECT priority, departure_at, energy_wanted_wh FROM sc_session_preferences "
        "WHERE charge_point_id = 'CP-N' AND transaction_id = 'tx-1'"
    )
    assert row is not None
    assert (row["priority"], row["departure_at"], row["energy_wanted_wh"]) == (5, leaves, 20_000.0)


async def test_a_sites_allocation_policy_is_set_read_and_validated(api: Api) -> None:
    created = await api.operator.post("/sites", json={"site_id": "pol", "phase_limit_a": 32})
    assert created.status_code == 201, created.text
    assert created.json()["allocation_policy"] == "fair"  # the default
    for policy in ("edf", "llf", "fcfs", "round-robin", "fair"):
        put = await api.operator.put(
            "/sites/pol", json={"phase_limit_a": 32, "allocation_policy": policy}
        )
        assert put.status_code == 200, put.text
        assert (await api.reader.get("/sites/pol")).json()["allocation_policy"] == policy
    bad = await api.operator.put(
        "/sites/pol", json={"phase_limit_a": 32, "allocation_policy": "lifo"}
    )
    assert bad.status_code == 422 and "allocation_policy" in bad.text
    bad_new = await api.operator.post("/sites", json={"site_id": "p2", "allocation_policy": "EDF"})
    assert bad_new.status_code == 422
    assert (await api.reader.get("/sites/p2")).status_code == 404  # nothing stored
    edf = await api.operator.post("/sites", json={"site_id": "p3", "allocation_policy": "edf"})
    assert edf.status_code == 201 and edf.json()["allocation_policy"] == "edf"
    listed = (await api.reader.get("/sites")).json()["items"]
    assert {s["site_id"]: s["allocation_policy"] for s in listed} == {
        "pol": "fair", "p3": "edf"
    }  # fmt: skip
