"""Time of use and the charger's own ceiling, end to end against simulated chargers (1.6, 2.0.1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.profiles import Profile, Purpose
from csms.outbox import schemas
from csms.outbox.envelope import OutboxRow, messages_for
from smart_charging import store
from smart_charging.tou_plan import past_sessions
from tests.csms.api.conftest import Api
from tests.smart_charging.support import place_all, start_site_fleet, watch_profiles
from tests.waiting import eventually


@pytest.fixture
async def fleet(api: Api) -> AsyncIterator[Fleet]:
    """Two one-connector chargers (one 1.6, one 2.0.1) at 16 A each on a 32 A site."""
    fleet = await start_site_fleet(api, chargers=2)
    yield fleet
    await fleet.stop()


def _record(fleet: Fleet) -> dict[str, list[Profile]]:
    """Every profile each charger accepts, in order."""
    installed: dict[str, list[Profile]] = {c.cfg.charger_id: [] for c in fleet.chargers}

    def seen(charger_id: str, status: str, profile: Profile) -> None:
        if status == "Accepted":
            installed[charger_id].append(profile)

    watch_profiles(fleet, seen)
    return installed


async def test_every_charger_gets_its_configured_maximum_as_a_max_profile_at_boot(
    api: Api, fleet: Fleet
) -> None:
    installed = _record(fleet)
    await place_all(api, fleet)

    async def ceilings() -> dict[str, Profile]:
        found = {cp: p for cp, ps in installed.items() for p in ps if p.purpose is Purpose.MAX}
        return found if len(found) == len(fleet.chargers) else {}

    found = await eventually(ceilings, within=10)
    for profile in found.values():
        assert profile.id == 7000 and profile.evse_id == 0 and profile.kind == "Absolute"
        assert [(p.start, p.limit) for p in profile.periods] == [(0, 16.0)]

    async def recorded() -> bool:
        # Recorded once both fallback profiles of a charger were answered: a moment later.
        sql = "SELECT payload FROM events WHERE type = 'charging_limit_set'"
        purposes = {json.loads(r["payload"])["purpose"] for r in await api.csms.pool.fetch(sql)}
        return {"ChargePointMaxProfile", "ChargingStationMaxProfile"} <= purposes

    await eventually(recorded, within=10)
    assert await _validated_events(api)


def _ev() -> EVState:
    return EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3), soc=10.0, target_soc=95.0)


async def _cheap_in_an_hour(api: Api) -> None:
    """Prices of site "s": dear from half an hour ago, cheap from an hour from now."""
    now = datetime.now(UTC)
    dear_from = (now - timedelta(minutes=30)).time().replace(second=0, microsecond=0)
    cheap_from = (now + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    prices = await api.operator.put(
        "/sites/s/prices",
        json={
            "time_zone": "UTC",
            "entries": [
                {"start": dear_from.isoformat(), "price": 0.40},
                {"start": cheap_from.isoformat(), "price": 0.10},
            ],
        },
    )
    assert prices.status_code == 200, prices.text
    assert (await api.reader.get("/sites/s/prices")).json()["time_zone"] == "UTC"


async def _active(api: Api, count: int) -> list[Any]:
    async def sessions() -> list[Any]:
        rows = await api.csms.pool.fetch(
            "SELECT charge_point_id, transaction_id FROM sessions WHERE status = 'active' "
            "ORDER BY charge_point_id"
        )
        return rows if len(rows) == count else []

    return await eventually(sessions, within=30)


async def _wants(api: Api, row: Any, departure: datetime, energy_wh: float) -> None:
    answer = await api.operator.put(
        f"/chargers/{row['charge_point_id']}/transactions/{row['transaction_id']}/preferences",
        json={"departure_at": departure.isoformat(), "energy_wanted_wh": energy_wh},
    )
    assert answer.status_code == 200, answer.text


def _last_tx(installed: dict[str, list[Profile]]) -> dict[str, float]:
    """Each charger's last accepted TxProfile limit (one period: the current quarter hour)."""
    out = {}
    for cp, ps in installed.items():
        tx = [p for p in ps if p.purpose is Purpose.TX]
        if tx:
            assert len(tx[-1].periods) == 1
            out[cp] = tx[-1].periods[0].limit
    return out


async def test_the_site_plan_waits_for_the_cheap_hours_when_the_deadlines_allow(
    api: Api, fleet: Fleet
) -> None:
    installed = _record(fleet)
    await place_all(api, fleet)
    await _cheap_in_an_hour(api)
    for charger in fleet.chargers:
        assert await charger.start_session(1, "T", _ev()) is not None
    # Three hours at 16 A on three lines each (11,040 W), wanted before a departure in ten
    # hours: both fit in the cheap hours side by side (2 x 16 A on a 32 A site).
    departure = datetime.now(UTC) + timedelta(hours=10)
    for row in await _active(api, len(fleet.chargers)):
        await _wants(api, row, departure, 3 * 11_040)

    async def reported() -> list[dict[str, Any]]:
        # The view and the events are recorded once the whole plan was sent: a moment later.
        load = (await api.reader.get("/sites/s/load")).json()
        plans = await _validated_events(api)
        shifted_plans = [p for p in plans if "sessions" in p and p["shifted"] == 2]
        return plans if len(load["shifted"]) == 2 and shifted_plans else []

    plans = await eventually(reported, within=30)
    assert all(p["deadlines_missed"] == [] for p in plans if "sessions" in p and p["shifted"])
    # Both stay switched off (the 0 A TxDefaultProfile they started under) until then.
    load = (await api.reader.get("/sites/s/load")).json()
    assert [(s["planned_a"], s["limit_a"]) for s in load["sessions"]] == [(0.0, 0.0)] * 2
    assert all(a == 0.0 for a in _last_tx(installed).values())


@pytest.fixture
async def fleet3(api: Api) -> AsyncIterator[Fleet]:
    """Three one-connector chargers at 16 A on a 32 A site: one too many at full power."""
    fleet = await start_site_fleet(api, chargers=3)
    yield fleet
    await fleet.stop()


async def test_a_session_switched_off_by_the_plan_releases_its_share(
    api: Api, fleet3: Fleet
) -> None:
    installed = _record(fleet3)
    await place_all(api, fleet3)
    await _cheap_in_an_hour(api)
    first, second, third = fleet3.chargers
    for charger in (first, second):
        assert await charger.start_session(1, "T", _ev()) is not None
    assert await third.start_session(1, "T", _ev()) is not None
    rows = await _active(api, 3)

    async def shared() -> dict[str, float]:
        last = _last_tx(installed)
        return last if len(last) == 3 and all(a == 10.6 for a in last.values()) else {}

    await eventually(shared, within=30)  # three sessions without deadlines share 32 A
    # The third one can wait ten hours for three hours of charging: the plan switches it
    # off until the cheap hours, and the two others get its share - 16 A each.
    row = next(r for r in rows if r["charge_point_id"] == third.cfg.charger_id)
    await _wants(api, row, datetime.now(UTC) + timedelta(hours=10), 3 * 11_040)
    expected = {first.cfg.charger_id: 16.0, second.cfg.charger_id: 16.0, row[0]: 0.0}

    async def released() -> dict[str, float]:
        last = _last_tx(installed)
        return last if last == expected else {}

    await eventually(released, within=30)
    load = (await api.reader.get("/sites/s/load")).json()
    assert load["shifted"] == [f"{third.cfg.charger_id}/1"]
    assert sum(s["planned_a"] for s in load["sessions"]) <= 32.0


async def _validated_events(api: Api) -> list[dict[str, Any]]:
    """Every load-management event recorded, after checking it against its Kafka schema."""
    rows = await api.csms.pool.fetch(
        "SELECT id, event_id, type, charge_point_id, evse_id, connector_id, occurred_at, "
        "recorded_at, payload FROM events "
        "WHERE type IN ('charging_limit_set', 'load_plan_computed') ORDER BY id"
    )
    payloads = []
    for r in rows:
        row = OutboxRow(**{**dict(r), "payload": json.loads(r["payload"])})
        for message in messages_for(row):
            schemas.validate(message.envelope)
        payloads.append(row.payload)
    return [dict(p) for p in payloads]


async def test_a_departure_that_cannot_be_met_charges_at_full_allocation_and_says_so(
    api: Api, fleet: Fleet
) -> None:
    installed = _record(fleet)
    await place_all(api, fleet)
    cheap_from = (datetime.now(UTC) + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    entries = [{"start": cheap_from.isoformat(), "price": 0.10}, {"start": "12:00", "price": 0.4}]
    if cheap_from.hour == 12:
        entries[1]["start"] = "13:00"
    prices = await api.operator.put("/sites/s/prices", json={"entries": entries})
    assert prices.status_code == 200, prices.text
    charger = fleet.chargers[0]
    assert await charger.start_session(1, "T", _ev()) is not None

    async def session() -> Any:
        return await api.csms.pool.fetchrow(
            "SELECT charge_point_id, transaction_id FROM sessions WHERE status = 'active'"
        )

    row = await eventually(session, within=10)
    # Three hours at 16 A wanted within half an hour: impossible, so no waiting for cheap hours.
    answer = await api.operator.put(
        f"/chargers/{row['charge_point_id']}/transactions/{row['transaction_id']}/preferences",
        json={
            "departure_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
            "energy_wanted_wh": 3 * 11_040,
        },
    )
    assert answer.status_code == 200, answer.text

    async def missed() -> list[str]:
        load = (await api.reader.get("/sites/s/load")).json()
        plans = [p for p in await _validated_events(api) if "sessions" in p]
        return load["deadlines_missed"] if any(p["deadlines_missed"] for p in plans) else []

    assert await eventually(missed, within=10) == [f"{row['charge_point_id']}/1"]
    tx = [p for p in installed[row["charge_point_id"]] if p.purpose is Purpose.TX]
    assert tx and all(len(p.periods) == 1 and p.periods[0].limit == 16.0 for p in tx[-1:])


async def test_the_sites_ended_sessions_are_the_history_of_expected_arrivals(
    api: Api, fleet: Fleet
) -> None:
    await place_all(api, fleet)
    charger = fleet.chargers[0]
    assert await charger.start_session(1, "T", _ev()) is not None

    async def charged() -> Any:
        sql = "SELECT energy_wh FROM sessions WHERE status = 'active' AND energy_wh > 0"
        return await api.csms.pool.fetchrow(sql)

    await eventually(charged, within=30)
    assert charger.stop_session(1, "Local")

    async def ended() -> list[Any]:
        since = datetime.now(UTC) - timedelta(weeks=4)
        async with api.csms.pool.acquire() as conn:
            return await store.ended_sessions(conn, "s", since)

    rows = await eventually(ended, within=30)
    async with api.csms.pool.acquire() as conn:
        tree = await store.load_tree(conn, "s")
    assert tree is not None
    (past,) = past_sessions([dict(r) for r in rows], tree)
    assert past.ended_at > past.started_at and past.energy_wh > 0
    assert past.max_kw == pytest.approx(16 * 3 * 0.23)  # its charger's maximum, 3 lines
