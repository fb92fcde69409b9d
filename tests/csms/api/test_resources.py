"""Read and management endpoints."""

from __future__ import annotations

import base64

import pytest
from websockets.exceptions import InvalidStatus

from charge_point_sim import Fleet
from tests.csms.api.conftest import CHARGER, Api
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


async def test_chargers_list_and_detail(api: Api, fleet: Fleet) -> None:
    await eventually(lambda: api.csms.pool.fetchval("SELECT count(*) >= 4 FROM connectors"))
    listed = (await api.reader.get("/chargers")).json()["items"]
    assert [c["charge_point_id"] for c in listed] == list(CHARGER.values())
    v201 = next(c for c in listed if c["charge_point_id"] == CHARGER["ocpp2.0.1"])
    assert v201["connected"] is True and v201["protocol"] == "ocpp2.0.1"
    assert v201["last_seen_at"] and v201["vendor"]
    assert {(k["evse_id"], k["status"]) for k in v201["connectors"]} == {
        (1, "Available"),
        (2, "Available"),
    }
    assert (await api.reader.get("/chargers", params={"q": "0001"})).json()["items"][0][
        "charge_point_id"
    ] == CHARGER["ocpp2.0.1"]
    assert (await api.reader.get("/chargers", params={"connected": "false"})).json()["items"] == []
    detail = (await api.reader.get(f"/chargers/{CHARGER['ocpp1.6']}")).json()
    assert detail["active_sessions"] == [] and detail["protocol"] == "ocpp1.6"
    missing = await api.reader.get("/chargers/NOPE")
    assert missing.status_code == 404 and missing.json()["error"] == "charger 'NOPE' not found"


async def test_sessions_filtering_paging_and_samples(api: Api, fleet: Fleet) -> None:
    for charger in CHARGER.values():
        await api.operator.post(
            f"/chargers/{charger}/commands/remote_start",
            json={"connector_id": 1, "id_token": "DRIVER-1"},
        )
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT count(*) = 2 FROM sessions WHERE meter_last_wh > meter_start_wh"
        ),
        within=15,
    )
    page1 = (await api.reader.get("/sessions", params={"limit": 1})).json()
    page2 = (
        await api.reader.get("/sessions", params={"limit": 1, "before_id": page1["next_before_id"]})
    ).json()
    assert len(page1["items"]) == len(page2["items"]) == 1
    assert page1["items"][0]["id"] > page2["items"][0]["id"]
    by_charger = (
        await api.reader.get(
            "/sessions", params={"charge_point_id": CHARGER["ocpp1.6"], "status": "active"}
        )
    ).json()
    assert [s["charge_point_id"] for s in by_charger["items"]] == [CHARGER["ocpp1.6"]]
    assert (await api.reader.get("/sessions", params={"id_token": "driver-1"})).json()["items"]
    assert (await api.reader.get("/sessions", params={"since": "2100-01-01T00:00:00Z"})).json()[
        "items"
    ] == []
    session_id = by_charger["items"][0]["id"]
    detail = (await api.reader.get(f"/sessions/{session_id}")).json()
    measurands = {s["measurand"] for s in detail["meter_samples"]}
    assert "Energy.Active.Import.Register" in measurands and "Power.Active.Import" in measurands
    bad = await api.reader.get("/sessions", params={"status": "paused"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("status:")
    assert (await api.reader.get("/sessions/999999")).status_code == 404


async def test_id_token_crud_drives_authorization(api: Api) -> None:
    put = await api.operator.put(
        "/id-tokens/Card-9", json={"status": "Blocked", "group_id": "FLEET"}
    )
    assert put.status_code == 200
    assert (await api.reader.get("/id-tokens/card-9")).json() == {
        "id_token": "Card-9",
        "status": "Blocked",
        "expires_at": None,
        "group_id": "FLEET",
    }
    token_row = await api.csms.pool.fetchval(
        "SELECT status FROM id_tokens WHERE id_token = 'Card-9'"
    )
    assert token_row == "Blocked"
    await api.operator.put("/id-tokens/CARD-9", json={"status": "Accepted"})
    assert [t["status"] for t in (await api.reader.get("/id-tokens")).json()["items"]] == [
        "Accepted"
    ]
    assert (await api.operator.delete("/id-tokens/card-9")).status_code == 204
    assert (await api.operator.delete("/id-tokens/card-9")).status_code == 404
    bad = await api.operator.put("/id-tokens/X", json={"status": "Maybe"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("status:")


async def test_register_and_remove_chargers(api: Api) -> None:
    put = await api.operator.put("/chargers/NEW-1", json={"registration": "Pending"})
    assert put.status_code == 200 and put.json()["registration"] == "Pending"
    assert (await api.operator.delete("/chargers/NEW-1")).status_code == 204
    assert (await api.operator.delete("/chargers/NEW-1")).status_code == 404
    await api.csms.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('OLD')")
    await api.csms.pool.execute(
        "INSERT INTO sessions (charge_point_id, protocol, transaction_id) "
        "VALUES ('OLD', 'ocpp1.6', '1')"
    )
    kept = await api.operator.delete("/chargers/OLD")
    assert kept.status_code == 409 and "Rejected" in kept.json()["error"]


async def test_charger_credentials_through_the_api_gate_its_connection(api: Api) -> None:
    weak = await api.operator.put("/chargers/SECURE-1", json={"security_profile": 1})
    assert weak.status_code == 422 and "needs a password" in weak.json()["error"]
    short = await api.operator.put(
        "/chargers/SECURE-1", json={"security_profile": 1, "password": "short"}
    )
    assert short.status_code == 422 and short.json()["error"].startswith("password:")
    password = "correct-horse-battery"
    put = await api.operator.put(
        "/chargers/SECURE-1", json={"security_profile": 1, "password": password}
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert (body["security_profile"], body["has_password"], body["registration"]) == (
        1, True, "Accepted")  # fmt: skip
    assert password not in put.text
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(api.csms.ocpp_url, "SECURE-1"):
            pass
    assert refused.value.response.status_code == 401
    token = base64.b64encode(f"SECURE-1:{password}".encode()).decode()
    async with raw_charger(
        api.csms.ocpp_url, "SECURE-1", headers={"Authorization": f"Basic {token}"}
    ) as charger:
        assert (await charger.exchange('[2, "h", "Heartbeat", {}]'))[0] == 3
