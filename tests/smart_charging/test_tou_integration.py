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


async def test_a_session_with_a_departure_is_shifted_to_the_cheap_hours(
    api: Api, fleet: Fleet
) -> None:
    installed = _record(fleet)
    await place_all(api, fleet)
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
    for charger in fleet.chargers:
        assert await charger.start_session(1, "T", _ev()) is not None

    async def sessions() -> list[Any]:
        rows = await api.csms.pool.fetch(
            "SELECT charge_point_id, transaction_id FROM sessions WHERE status = 'active'"
        )
        return rows if len(rows) == len(fleet.chargers) else []

    # Three hours at 16 A on three lines (11,040 W), wanted before a departure in ten hours.
    departure = now + timedelta(hours=10)
    for row in await eventually(sessions, within=10):
        answer = await api.operator.put(
            f"/chargers/{row['charge_point_id']}/transactions/{row['transaction_id']}/preferences",
            json={"departure_at": departure.isoformat(), "energy_wanted_wh": 3 * 11_040},
        )
        assert answer.status_code == 200, answer.text

    async def shifted() -> dict[str, Profile]:
        found = {
            cp: ps[-1]
            for cp, ps in installed.items()
            if ps and ps[-1].purpose is Purpose.TX and len(ps[-1].periods) > 1
        }
        return found if len(found) == len(fleet.chargers) else {}

    found = await eventually(shifted, within=10)
    cheap_offset = (datetime.combine(now.date(), cheap_from, UTC) - now).total_seconds()
    if cheap_offset < 0:
        cheap_offset += 86_400  # the cheap hours start after midnight
    for profile in found.values():
        assert profile.kind == "Absolute" and profile.start_schedule is not None
        periods = [(p.start, p.limit) for p in profile.periods]
        # Paused while dear, 16 A from the cheap hour for about the three hours still wanted.
        assert periods[0] == (0, 0.0) and periods[-1][1] == 0.0 and len(periods) == 3
        start = (profile.start_schedule - now).total_seconds() + periods[1][0]
        assert abs(start - cheap_offset) < 60 and periods[1][1] == 16.0
        assert 2.5 * 3600 < periods[2][0] - periods[1][0] <= 3 * 3600

    async def reported() -> list[dict[str, Any]]:
        # The view and the events are recorded once the whole plan was sent: a moment later.
        load = (await api.reader.get("/sites/s/load")).json()
        plans = await _validated_events(api)
        shifted_plans = [p for p in plans if "sessions" in p and p["shifted"] == 2]
        return plans if len(load["shifted"]) == 2 and shifted_plans else []

    plans = await eventually(reported, within=10)
    assert all(p["deadlines_missed"] == [] for p in plans if "sessions" in p)
    assert any(p.get("periods") for p in plans if "purpose" in p)


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
