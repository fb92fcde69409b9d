"""Full EVs between meter values: what the charger's state reports and its placement say.

Meter values come every 5-15 minutes on real sites; here they are switched off (one
per simulated hour, two real minutes at the fleet's speed), so the load manager can
only act on the charger's state reports (1.6 StatusNotification, 2.0.1
TransactionEvent chargingState) and on what the operator said of the charger:

* an idle EV that starts drawing again reports Charging: back in its class at once;
* a probe of a full EV ends once the EV has had time to follow and still reports
  SuspendedEV, not at the end of its window;
* an EV full right after its limit changed (its SuspendedEV report comes while the
  EV may still be following) gives its share back once it has had that time;
* a session on a single-phase charger is planned as single-phase from its first
  profile on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from charge_point_sim.commands import SimCharger
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.profiles import Profile, Purpose
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api
from tests.smart_charging.conftest import open_api
from tests.smart_charging.support import SITE_LIMIT, line_sums, start_site_fleet, watch_profiles
from tests.waiting import eventually

NO_METER_VALUES = 3600  # simulated s between a session's meter values (2 real minutes)
SPEC = EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3, taper_start_soc=100.0)


@pytest.fixture
async def reports_api(start_csms: StartCsms) -> AsyncIterator[Api]:
    async with open_api(
        start_csms,
        smart_charging_idle_after=1.0,
        smart_charging_probe_interval=2.0,
        smart_charging_probe_window=600.0,  # a probe that ends only by its window never ends
    ) as api:
        yield api


async def _sessions(api: Api) -> dict[str, dict[str, Any]]:
    load = (await api.reader.get("/sites/s/load")).json()
    return {s["charge_point_id"]: s for s in load.get("sessions", [])}


async def _place(api: Api, charger: SimCharger, **extra: Any) -> None:
    place = {"site_id": "s", "max_current_a": 16, **extra}
    answer = await api.operator.put(f"/chargers/{charger.cfg.charger_id}/site", json=place)
    assert answer.status_code == 200, answer.text


def _nearly_full(fleet: Fleet) -> EVState:
    """800 Wh short of its target, staying plugged in when full (SuspendedEV)."""
    departs = fleet.clock.now() + timedelta(hours=3)
    ev = EVState(SPEC, soc=94.0, target_soc=95.0, departure=departs)
    return dataclasses.replace(ev, stays_plugged=True)


async def _limits_sent(api: Api, charger_id: str) -> list[float]:
    rows = await api.csms.pool.fetch(
        "SELECT payload FROM events WHERE type = 'charging_limit_set' "
        "AND charge_point_id = $1 AND payload->>'purpose' = 'TxProfile' ORDER BY id",
        charger_id,
    )
    return [float(json.loads(r["payload"])["limit_a"]) for r in rows]


async def _assert_under_the_limit(api: Api) -> None:
    for s in await line_sums(api.csms.pool):
        assert max(s["L1"], s["L2"], s["L3"]) <= SITE_LIMIT + 0.5, s


async def test_an_idle_ev_reporting_charging_is_back_at_once(reports_api: Api) -> None:
    """1.6: a StatusNotification carries no meter value; Charging alone brings it back."""
    api = reports_api
    fleet = await start_site_fleet(api, chargers=2, meter_interval=NO_METER_VALUES)
    try:
        v16 = [c for i, c in enumerate(fleet.chargers) if not fleet.cfg.is_v201(i)]
        full_one = v16[0]
        other = next(c for c in fleet.chargers if c is not full_one)
        for charger in fleet.chargers:
            await _place(api, charger)
        assert await full_one.start_session(1, "T", _nearly_full(fleet)) is not None
        assert await other.start_session(1, "T", EVState(SPEC, soc=10.0)) is not None
        full_id = full_one.cfg.charger_id

        # Full: SuspendedEV; idle, it keeps only its minimum of what the other leaves.
        async def idle_at_its_minimum() -> bool:
            full = (await _sessions(api)).get(full_id)
            return full is not None and full["idle"] and 5.9 <= (full["limit_a"] or 0.0) < 7.9

        await eventually(idle_at_its_minimum, within=30)
        session = full_one.connectors[1].session
        assert session is not None and session.ev.full

        # It wants energy again: it draws its minimum, the charger says Charging.
        session.ev = dataclasses.replace(session.ev, target_soc=100.0)

        async def back() -> bool:
            full = (await _sessions(api)).get(full_id)
            return full is not None and not full["idle"] and (full["limit_a"] or 0.0) >= 7.9

        await eventually(back, within=30)  # no meter value comes for two minutes
        await _assert_under_the_limit(api)
    finally:
        await fleet.stop()


async def test_a_probe_of_a_full_ev_ends_once_it_had_time_to_follow(reports_api: Api) -> None:
    """The probe's window is 10 minutes: it ends on the SuspendedEV report, well before."""
    api = reports_api
    fleet = await start_site_fleet(api, chargers=3, meter_interval=NO_METER_VALUES)
    try:
        for charger in fleet.chargers:
            await _place(api, charger)
        full_one, *others = fleet.chargers
        assert await full_one.start_session(1, "T", _nearly_full(fleet)) is not None
        for charger in others:
            assert await charger.start_session(1, "T", EVState(SPEC, soc=10.0)) is not None
        full_id = full_one.cfg.charger_id

        async def probed_and_paused_again() -> bool:
            limits = await _limits_sent(api, full_id)
            if 0.0 not in limits:
                return False
            after_pause = limits[limits.index(0.0) :]  # paused as the lowest class, ...
            probes = [i for i, a in enumerate(after_pause) if a >= 6.0]  # ... probed, ...
            return bool(probes) and 0.0 in after_pause[probes[0] :]  # ... paused again

        await eventually(probed_and_paused_again, within=30)
        await _assert_under_the_limit(api)
    finally:
        await fleet.stop()


@pytest.mark.parametrize("v201", [False, True], ids=["1.6", "2.0.1"])
async def test_an_ev_full_while_following_its_limit_gives_its_share_back(
    reports_api: Api, v201: bool
) -> None:
    """2.0.1: the chargingState comes in TransactionEvents that name no EVSE (only the
    first one of a transaction must): the session is found by its transaction."""
    api = reports_api
    fleet = await start_site_fleet(api, chargers=3, meter_interval=NO_METER_VALUES)
    try:
        for charger in fleet.chargers:
            await _place(api, charger)
        full_one = next(c for i, c in enumerate(fleet.chargers) if fleet.cfg.is_v201(i) == v201)
        others = [c for c in fleet.chargers if c is not full_one]
        for charger in others:
            assert await charger.start_session(1, "T", EVState(SPEC, soc=10.0)) is not None
        # 24 Wh short: full some 15 simulated s after its first limit, inside the 45 s the
        # load manager gives an EV to follow a change (0.5 s settle + 1 s, at 30x).
        ev = dataclasses.replace(_nearly_full(fleet), soc=94.97)
        assert await full_one.start_session(1, "T", ev) is not None
        full_id = full_one.cfg.charger_id

        async def idle() -> bool:
            full = (await _sessions(api)).get(full_id)
            return full is not None and full["idle"]

        await eventually(idle, within=30)
        session = full_one.connectors[1].session
        assert session is not None and session.ev.full
        await _assert_under_the_limit(api)
    finally:
        await fleet.stop()


async def test_a_single_phase_chargers_session_is_single_phase_from_the_start(
    reports_api: Api,
) -> None:
    api = reports_api
    fleet = await start_site_fleet(api, chargers=1, meter_interval=NO_METER_VALUES)
    try:
        charger = fleet.chargers[0]
        await _place(api, charger, max_current_a=32, phases=1)
        seen: list[Profile] = []

        def on_profile(charger_id: str, status: str, profile: Profile) -> None:
            if profile.purpose is Purpose.TX and status == "Accepted":
                seen.append(profile)

        watch_profiles(fleet, on_profile)
        spec = EVSpec(capacity_kwh=60.0, max_ac_kw=7.4, phases=1)
        assert await charger.start_session(1, "T", EVState(spec, soc=10.0)) is not None

        async def planned() -> bool:
            return bool(seen)

        await eventually(planned, within=30)
        # Its first profile, sent before any meter value could show one line in use.
        assert [p.phases for p in seen[0].periods] == [1]
        session = (await _sessions(api))[charger.cfg.charger_id]
        assert session["phases"] == 1
    finally:
        await fleet.stop()
