"""The real-time loop against simulated chargers: ordering, refusals, chargers going offline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from charge_point_sim import Fleet
from charge_point_sim.ev import EVSpec, EVState
from tests.csms.api.conftest import Api
from tests.smart_charging.support import SITE_LIMIT, place_all, start_site_fleet, watch_profiles
from tests.waiting import eventually


def _ev() -> EVState:
    return EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3), soc=10.0, target_soc=95.0)


@pytest.fixture
async def fleet(api: Api) -> AsyncIterator[Fleet]:
    """Four one-connector chargers (1.6 and 2.0.1) at 16 A each on a 32 A site."""
    fleet = await start_site_fleet(api, chargers=4)
    yield fleet
    await fleet.stop()


Arrival = tuple[float, str, str, float]  # (monotonic time, charger, purpose, limit A)


def _record_profiles(fleet: Fleet, log: list[Arrival]) -> None:
    """Note every profile each charger installs, in the order they arrive."""
    watch_profiles(
        fleet,
        lambda charger_id, _status, profile: log.append(
            (time.monotonic(), charger_id, profile.purpose.value, profile.periods[0].limit)
        ),
    )


async def _load(api: Api) -> dict[str, Any]:
    load: dict[str, Any] = (await api.reader.get("/sites/s/load")).json()
    return load


async def test_limits_that_go_down_are_accepted_before_any_goes_up(api: Api, fleet: Fleet) -> None:
    arrivals: list[Arrival] = []
    _record_profiles(fleet, arrivals)
    await place_all(api, fleet)
    for charger in fleet.chargers[:3]:
        assert await charger.start_session(1, "T", _ev()) is not None

    async def three_share() -> bool:
        load = await _load(api)
        planned = sorted(s["limit_a"] or 0 for s in load["sessions"]) == [10.6, 10.6, 10.6]
        # ... and every charger has its 10.6 A profile (the view is stored as they go out).
        told = {a[1] for a in arrivals if a[2] == "Tx" and a[3] == 10.6}
        return planned and told == {c.cfg.charger_id for c in fleet.chargers[:3]}

    await eventually(three_share, within=10)
    arrivals.clear()
    newcomer = fleet.chargers[3]
    assert await newcomer.start_session(1, "T", _ev()) is not None

    async def four_share() -> bool:
        load = await _load(api)
        return sorted(s["limit_a"] or 0 for s in load["sessions"]) == [8.0, 8.0, 8.0, 8.0]

    await eventually(four_share, within=10)
    tx = [a for a in arrivals if a[2] == "Tx"]
    downs = [a for a in tx if a[1] != newcomer.cfg.charger_id]
    ups = [a for a in tx if a[1] == newcomer.cfg.charger_id]
    assert [a[3] for a in downs] == [8.0, 8.0, 8.0] and [a[3] for a in ups] == [8.0]
    assert max(a[0] for a in downs) < min(a[0] for a in ups)
    # The increase waited for the decreases' answers and the settle time (0.5 s).
    assert min(a[0] for a in ups) - max(a[0] for a in downs) >= 0.45


async def test_a_charger_that_rejects_profiles_is_set_aside_at_its_last_known_maximum(
    api: Api, fleet: Fleet
) -> None:
    stubborn = fleet.chargers[0]
    stubborn.set_profile = lambda evse_id, parse: "Rejected"  # type: ignore[method-assign]
    await place_all(api, fleet)
    for charger in fleet.chargers[:3]:
        assert await charger.start_session(1, "T", _ev()) is not None

    async def planned() -> dict[str, Any]:
        load = await _load(api)
        by_charger = {s["charge_point_id"]: s for s in load["sessions"]}
        if len(by_charger) < 3:
            return {}
        others = [s for cp, s in by_charger.items() if cp != stubborn.cfg.charger_id]
        if any(s["limit_a"] != 8.0 for s in others):
            return {}
        return load

    load = await eventually(planned, within=10)
    mine = next(s for s in load["sessions"] if s["charge_point_id"] == stubborn.cfg.charger_id)
    # It never accepted a TxDefaultProfile either: it may draw its hardware maximum.
    assert mine["uncontrolled_a"] == 16.0 and load["reserved_a"] == 16.0
    assert max(load["allocated_a"]) <= SITE_LIMIT
    refused = await api.csms.pool.fetch(
        "SELECT payload FROM events WHERE type = 'charging_limit_set' AND charge_point_id = $1",
        stubborn.cfg.charger_id,
    )
    assert refused and all(json.loads(r["payload"])["status"] == "Rejected" for r in refused)


async def test_a_charger_going_offline_keeps_its_last_limit_set_aside(
    api: Api, fleet: Fleet
) -> None:
    await place_all(api, fleet)
    for charger in fleet.chargers[:2]:
        assert await charger.start_session(1, "T", _ev()) is not None

    async def two_share() -> bool:
        load = await _load(api)
        return sorted(s["limit_a"] or 0 for s in load["sessions"]) == [16.0, 16.0]

    await eventually(two_share, within=10)
    fleet.chargers[0].drop_connection()

    async def planned_without_it() -> list[dict[str, Any]]:
        rows = await api.csms.pool.fetch(
            "SELECT payload FROM events WHERE type = 'load_plan_computed' ORDER BY id"
        )
        plans = [json.loads(r["payload"]) for r in rows]
        return [p for p in plans if "charger_offline" in p["reason"]]

    offline_plans = await eventually(planned_without_it, within=10)
    assert offline_plans[0]["reserved_a"] == 16.0  # its last accepted limit
    assert max(offline_plans[0]["allocated_a"]) <= SITE_LIMIT
    # Back online (the simulator reconnects): steered again, nothing set aside.
    await eventually(lambda: _steered_again(api), within=15)
    await asyncio.sleep(0)


async def _steered_again(api: Api) -> bool:
    load = await _load(api)
    return load["reserved_a"] == 0.0 and all(s["limit_a"] for s in load["sessions"])
