"""Arrivals on a full site: the TxDefaultProfile a new session starts under is held for it.

Real CSMS, real Postgres, simulated chargers with the lagging EV model (a new
limit is followed after a reaction delay and a ramp). The site's limit is
checked at every change of any EV's draw (the chargers' ``on_draw`` hook) and
at every stored meter sample.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from charge_point_sim import Fleet
from charge_point_sim.commands import SimCharger
from charge_point_sim.ev import VOLTAGE, EVSpec, EVState
from charge_point_sim.profiles import Profile, Purpose, TxContext, limit_at
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api
from tests.smart_charging.conftest import open_api
from tests.smart_charging.support import (
    SITE_LIMIT,
    line_sums,
    place_all,
    start_site_fleet,
    watch_profiles,
)
from tests.waiting import eventually


def _ev() -> EVState:
    # 22 kW three-phase: 31.9 A per line, more than any charger here gives it.
    return EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=22.0, phases=3), soc=10.0, target_soc=95.0)


class DrawWatch:
    """The summed draw per line of every EV of ``fleet``, at every change of any of them.

    And what the chargers would allow if the CSMS vanished at that moment (``fallback_peak``,
    also checked after every profile a charger accepts): per connector, the higher of its
    session's limit and the limit a new session would start under, from each charger's own
    profile stack - every session going on, every one ending and being followed by a new
    one, every free connector starting one, all at once.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.events = 0  # order of what is seen (draws here, profiles in the tests' spies)
        self.first_draw: dict[str, int] = {}  # charger -> when its EV first drew 1 A or more
        self.checks = 0
        self.fallback_peak = 0.0
        self.armed = False  # the fallback is checked once the site's profiles are in place
        self.fallback_worst: dict[str, float] = {}
        self.peak = 0.0
        self.worst: dict[str, float] = {}
        for charger in fleet.chargers:
            charger.on_draw = self.check

    def check(self) -> None:
        total = 0.0
        draws = {}
        for charger in self.fleet.chargers:
            for conn in charger.connectors.values():
                s = conn.session
                if s is not None and s.stop_reason is None:
                    per_line = s.power_w / (VOLTAGE * s.ev.spec.phases)
                    draws[charger.cfg.charger_id] = per_line
                    total += per_line
                    if per_line >= 1.0:
                        self.first_draw.setdefault(charger.cfg.charger_id, self.tick())
        self.checks += 1
        if total > self.peak:
            self.peak, self.worst = total, draws
        if not self.armed:
            return
        allowed = {c.cfg.charger_id: _fallback_a(c) for c in self.fleet.chargers}
        if sum(allowed.values()) > self.fallback_peak:
            self.fallback_peak, self.fallback_worst = sum(allowed.values()), allowed

    def tick(self) -> int:
        self.events += 1
        return self.events


def _fallback_a(charger: SimCharger) -> float:
    """A per line ``charger`` may draw without the CSMS, by its own profile stack."""
    now = charger.clock.now()
    stack = charger.profiles.profiles
    total = 0.0
    for conn in charger.connectors.values():
        allowed = [limit_at(stack, conn.id, now, None)]  # a session starting now
        s = conn.session
        if s is not None and s.stop_reason is None:
            allowed.append(
                limit_at(stack, conn.id, now, TxContext(s.transaction_id or "", s.started))
            )
        amps = [a.amps if a.amps is not None else a.watts / (VOLTAGE * 3) for a in allowed if a]
        hardware = charger.cfg.max_power_w / (VOLTAGE * 3)
        total += max(amps) if len(amps) == len(allowed) else hardware
    return total


async def _load(api: Api) -> dict[str, Any]:
    answer = await api.reader.get("/sites/s/load")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _limits(load: dict[str, Any]) -> dict[str, float]:
    return {s["charge_point_id"]: s["limit_a"] or 0.0 for s in load["sessions"]}


async def test_a_new_ev_on_a_site_at_its_limit_never_takes_it_over(api: Api) -> None:
    # Four 16 A chargers on 32 A: the failsafe share is 8 A. Two EVs take 16 A each - twice
    # their share - and a third plugs in: it must not start at 8 A next to them (before
    # this rule it did: 40 A on the 32 A site until the planner had lowered the others).
    await _arrival_on_a_full_site(api, reserve_a=0.0)


async def test_capacity_held_for_arrivals_lets_a_new_ev_start_at_once(api: Api) -> None:
    # The same site holding 6 A per line for arrivals: the two EVs get 13 A each, one idle
    # charger holds 6 A; the EV plugged in there draws before its first TxProfile.
    await _arrival_on_a_full_site(api, reserve_a=6.0)


async def _arrival_on_a_full_site(api: Api, reserve_a: float) -> None:
    fleet = await start_site_fleet(api, chargers=4, fallback_current_a=None, meter_interval=1)
    site = {"phase_limit_a": SITE_LIMIT, "fallback_current_a": None, "arrival_reserve_a": reserve_a}
    assert (await api.operator.put("/sites/s", json=site)).status_code == 200
    watch = DrawWatch(fleet)
    defaults: dict[str, float] = {}
    first_tx: dict[str, int] = {}  # charger -> when it first accepted a TxProfile

    def seen(charger_id: str, status: str, profile: Profile) -> None:
        if profile.purpose is Purpose.TX_DEFAULT and status == "Accepted":
            defaults[charger_id] = profile.periods[0].limit
        if profile.purpose is Purpose.TX and status == "Accepted":
            first_tx.setdefault(charger_id, watch.tick())
        if status == "Accepted":
            watch.check()

    watch_profiles(fleet, seen)
    try:
        await place_all(api, fleet)
        ids = [c.cfg.charger_id for c in fleet.chargers]

        async def defaults_are(expected: dict[str, float]) -> bool:
            return defaults == expected

        await eventually(lambda: defaults_are(dict.fromkeys(ids, 8.0)), within=15)
        watch.armed = True
        watch.check()
        for charger in fleet.chargers[:2]:
            assert await charger.start_session(1, "T", _ev()) is not None
        each = (SITE_LIMIT - reserve_a) / 2  # 16 A, or 13 A with 6 A held

        async def two_share() -> bool:
            return sorted(_limits(await _load(api)).values()) == [each, each]

        await eventually(two_share, within=15)

        # The idle chargers hold what the sessions leave - nothing, or the reserve (6 A on
        # one charger: 3 A each would charge nothing). The busy ones keep what they had
        # (6 or 8 A): a session after the current one would start under it, below the
        # current one's limit.
        idle = [6.0, 0.0] if reserve_a else [0.0, 0.0]

        async def idle_hold_what_is_left() -> bool:
            return [defaults[cp] for cp in ids[2:]] == idle and all(
                6.0 <= defaults[cp] <= each for cp in ids[:2]
            )

        await eventually(idle_hold_what_is_left, within=15)

        async def shown_on_the_load_view() -> bool:
            shown = (await _load(api))["tx_defaults"]
            return [shown[cp] for cp in ids[2:]] == idle

        await eventually(shown_on_the_load_view, within=15)
        await eventually(lambda: _drawing(fleet.chargers[:2], each), within=15)

        newcomer = fleet.chargers[2]
        assert await newcomer.start_session(1, "T", _ev()) is not None
        share = 10.6 if not reserve_a else 8.6  # (32 - held) / 3, floored to 0.1 A

        async def three_share() -> bool:
            limits = _limits(await _load(api))
            return len(limits) == 3 and all(a >= share for a in limits.values())

        await eventually(three_share, within=20)  # it gets its share after one plan
        await eventually(lambda: _drawing(fleet.chargers[:3], share), within=15)
        cp = newcomer.cfg.charger_id
        if reserve_a:  # it drew its 6 A before its first TxProfile
            assert watch.first_draw[cp] < first_tx[cp], (watch.first_draw, first_tx)
        else:  # it waited for its TxProfile
            assert watch.first_draw[cp] > first_tx[cp], (watch.first_draw, first_tx)
        assert watch.checks > 50
        assert watch.peak <= SITE_LIMIT + 0.05, (watch.peak, watch.worst)
        assert watch.fallback_peak <= SITE_LIMIT + 0.05, (watch.fallback_peak, watch.fallback_worst)
        sums = await line_sums(api.csms.pool)
        assert len(sums) > 50
        for s in sums:
            assert max(s["L1"], s["L2"], s["L3"]) <= SITE_LIMIT + 0.05, s
    finally:
        await fleet.stop()


async def _drawing(chargers: list[SimCharger], at_least_a: float) -> bool:
    """Every EV on ``chargers`` draws at least ``at_least_a`` per line."""
    for charger in chargers:
        s = charger.connectors[1].session
        if s is None or s.power_w / (VOLTAGE * s.ev.spec.phases) < at_least_a - 0.1:
            return False
    return True


async def test_a_session_that_starts_while_increases_wait_gets_them_planned_again(
    start_csms: StartCsms,
) -> None:
    # Three 24 A chargers on 32 A; A and B share it (16 A each). A's maximum is lowered to
    # 10 A: A goes down first, and B's increase to 22 A waits the settle time. C plugs in
    # during that wait: B's 22 A was planned without C and must not be sent - the site is
    # planned again (B 11 A, C 11 A), B never above 16 A.
    async with open_api(start_csms, smart_charging_settle=3.0) as api:
        fleet = await start_site_fleet(api, chargers=3, fallback_current_a=None)
        a, b, c = fleet.chargers
        tx_limits: dict[str, list[float]] = {ch.cfg.charger_id: [] for ch in fleet.chargers}
        started: list[asyncio.Task[Any]] = []

        def seen(charger_id: str, status: str, profile: Profile) -> None:
            if profile.purpose is not Purpose.TX or status != "Accepted":
                return
            limit = profile.periods[0].limit
            tx_limits[charger_id].append(limit)
            if charger_id == a.cfg.charger_id and limit == 10.0 and not started:
                # A followed its decrease: the settle time runs; C arrives now.
                started.append(asyncio.create_task(c.start_session(1, "T", _ev())))

        watch_profiles(fleet, seen)
        try:
            for charger in fleet.chargers:
                placed = await api.operator.put(
                    f"/chargers/{charger.cfg.charger_id}/site",
                    json={"site_id": "s", "max_current_a": 24},
                )
                assert placed.status_code == 200, placed.text
            for charger in (a, b):
                assert await charger.start_session(1, "T", _ev()) is not None

            async def shared(expected: dict[str, float]) -> bool:
                return _limits(await _load(api)) == expected

            ids = {ch: ch.cfg.charger_id for ch in fleet.chargers}
            await eventually(lambda: shared({ids[a]: 16.0, ids[b]: 16.0}), within=15)
            tx_limits[ids[b]].clear()
            lowered = await api.operator.put(
                f"/chargers/{ids[a]}/site", json={"site_id": "s", "max_current_a": 10}
            )
            assert lowered.status_code == 200, lowered.text
            await eventually(lambda: _started(started), within=20)
            await eventually(lambda: shared({ids[a]: 10.0, ids[b]: 11.0, ids[c]: 11.0}), within=30)
            assert tx_limits[ids[b]] and max(tx_limits[ids[b]]) <= 16.0, tx_limits

            async def replanned_for_it() -> bool:
                rows = await api.csms.pool.fetch(
                    "SELECT payload->>'reason' AS reason FROM events "
                    "WHERE type = 'load_plan_computed'"
                )
                return any("sessions_changed" in r["reason"] for r in rows)

            await eventually(replanned_for_it, within=15)
        finally:
            await fleet.stop()


async def _started(tasks: list[asyncio.Task[Any]]) -> bool:
    return bool(tasks) and tasks[0].done() and tasks[0].result() is not None


async def test_a_charger_that_refuses_a_lower_txdefault_keeps_its_share_held(api: Api) -> None:
    # The third charger accepts its 8 A TxDefault (its failsafe share once all four are
    # placed), then refuses every other one: it may start a session at 8 A at any time,
    # so the two EVs share 32 - 8 = 24 A. (While the chargers are being placed one by
    # one, a plan may give it a larger share of fewer chargers first: accepted too.)
    fleet = await start_site_fleet(api, chargers=4, fallback_current_a=None, meter_interval=1)
    watch = DrawWatch(fleet)
    stubborn = fleet.chargers[2]
    accepted_one: list[float] = []
    original = stubborn.set_profile

    def refuse_after_the_first_default(evse_id: int, parse: Callable[[], Profile]) -> str:
        profile = parse()
        if profile.purpose is Purpose.TX_DEFAULT and accepted_one:
            return "Rejected"
        status = original(evse_id, parse)
        if profile.purpose is Purpose.TX_DEFAULT and status == "Accepted":
            if profile.periods[0].limit == 8.0:
                accepted_one.append(profile.periods[0].limit)
        return status

    stubborn.set_profile = refuse_after_the_first_default  # type: ignore[method-assign]
    watch_profiles(fleet, lambda _cp, status, _p: watch.check() if status == "Accepted" else None)
    try:
        await place_all(api, fleet)

        async def all_placed() -> bool:
            load = await _load(api)
            return len([v for v in load["tx_defaults"].values() if v is not None]) == 4

        await eventually(all_placed, within=15)
        assert accepted_one == [8.0]
        watch.armed = True
        for charger in fleet.chargers[:2]:
            assert await charger.start_session(1, "T", _ev()) is not None

        async def two_share_what_is_left() -> bool:
            return sorted(_limits(await _load(api)).values()) == [12.0, 12.0]

        await eventually(two_share_what_is_left, within=15)
        await eventually(lambda: _drawing(fleet.chargers[:2], 12.0), within=15)
        assert await stubborn.start_session(1, "T", _ev()) is not None  # at its 8 A at once
        await eventually(lambda: _drawing([stubborn], 8.0), within=15)
        assert watch.peak <= SITE_LIMIT + 0.05, (watch.peak, watch.worst)
        assert watch.fallback_peak <= SITE_LIMIT + 0.05, (watch.fallback_peak, watch.fallback_worst)
    finally:
        await fleet.stop()
