"""What a plan feeds the allocator: the sessions as it sees them, the room kept for
arrivals, the site's time-of-use caps (for :mod:`smart_charging.planning`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from smart_charging import tou_plan
from smart_charging.allocation import NOMINAL_VOLTAGE
from smart_charging.model import LiveSession, SiteTree
from smart_charging.session_sync import hardware_max
from smart_charging.tracking import (
    Tracked,
    note_suspended,
    probe_found_nothing,
    start_probe,
    still_suspended,
)

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService


@dataclass(slots=True)
class ArrivalRoom:
    """What a plan keeps for sessions that may start (:mod:`smart_charging.arrivals`)."""

    free: dict[str, int]  # charger -> connectors without a session
    fixed: dict[str, float]  # charger -> A per line held for a TxDefault that stays as it is
    steerable: set[str]  # chargers whose TxDefault this plan may change
    held: float  # A per line held back from the sessions (the site's arrival reserve)


def live_sessions(
    svc: SmartChargingService,
    tree: SiteTree,
    tracked: dict[str, Tracked],
    tou: tou_plan.Allowances | None,
    ceilings: dict[str, float],
    now: datetime,
) -> list[LiveSession]:
    """The allocator's view of every tracked session (idle, probing, capped by the TOU plan)."""
    clock = svc.clock.monotonic()
    caps = tou.caps_a if tou is not None else {}
    live = []
    for key, t in tracked.items():
        cp = t.charge_point_id
        online = svc.protocol_of(cp) is not None
        if not online and t.assumed is None:
            # Offline: it may go on at its limit, or start under its TxDefault.
            t.assumed = t.last_known_max(svc.fallbacks.defaults.get(cp, ceilings.get(cp, 0)))
        if probe_found_nothing(t, clock, svc.settle_grace):
            t.probing, t.idle, t.idle_at = False, True, clock
        elif not t.idle and still_suspended(t, clock, svc.settle_grace):
            note_suspended(t, True, clock)  # full right after a change: idle now
        window = svc.settings.smart_charging_probe_window
        if start_probe(t, clock, svc.settings.smart_charging_probe_interval, window):
            # Ended at its window's end, not at the next periodic plan (minutes
            # later, the probed EV holding its minimum all along).
            svc.replan_after(tree.site.site_id, window, "probe_window_ended")
        live.append(
            LiveSession(
                cp,
                t.evse_id,
                t.transaction_id,
                rank=t.rank,
                phases=t.phases,
                priority=t.priority,
                observed_max=t.observed_max,
                uncontrolled_draw=t.assumed,
                urgency=svc.urgency_of(t, tree, now),
                idle=t.idle,
                probing=t.probing,
                plan_cap_a=None if t.probing else caps.get(key),
            )
        )
    return live


def arrival_room(
    svc: SmartChargingService, tree: SiteTree, tracked: dict[str, Tracked]
) -> ArrivalRoom:
    """Free connectors, whose TxDefault can be changed, and what must be held for the rest."""
    fallbacks = svc.fallbacks
    ceilings = fallbacks.ceilings(tree)
    busy: dict[str, list[Tracked]] = {}
    for t in tracked.values():
        busy.setdefault(t.charge_point_id, []).append(t)
    free, fixed, steerable = {}, {}, set()
    for place in tree.chargers:
        cp = place.charge_point_id
        sessions = busy.get(cp, [])
        free[cp] = max(0, place.connectors - len(sessions))
        if fallbacks.steerable(cp):
            steerable.add(cp)
            continue
        # Its TxDefault stays what it is: every free connector may start a session under
        # it, and a session that ends may be followed by one (counted above its limit).
        online = svc.protocol_of(cp) is not None
        unknown = hardware_max(tree, cp) if online else ceilings.get(cp, 0.0)
        default = fallbacks.defaults.get(cp, unknown)
        extra = sum(max(0.0, default - (t.assumed or 0.0)) for t in sessions)
        fixed[cp] = free[cp] * default + extra
    held = tree.site.arrival_reserve_a if any(free[cp] for cp in steerable) else 0.0
    return ArrivalRoom(free, fixed, steerable, held)


async def tou_allowances(
    svc: SmartChargingService, tree: SiteTree, tracked: dict[str, Tracked], now: datetime
) -> tou_plan.Allowances | None:
    """The site's time-of-use plan for now (None: no prices, no deadlines, or failed)."""
    needs, reserved_kw = [], 0.0
    for key, t in tracked.items():
        if t.assumed is not None or svc.protocol_of(t.charge_point_id) is None:
            draw = t.assumed if t.assumed is not None else t.limit or 0.0
            reserved_kw += draw * t.phases * NOMINAL_VOLTAGE / 1000.0
        elif t.departure_at and t.energy_wanted_wh is not None and not t.idle:
            left = t.energy_wanted_wh - (t.energy_wh or 0.0)
            hardware = hardware_max(tree, t.charge_point_id)
            wanted = t.energy_wanted_wh
            needs.append(tou_plan.Need(key, t.phases, hardware, t.departure_at, left, wanted))
    history = await svc.tou.history(tree, needs, now, svc.pool)
    return await svc.tou.current(tree, needs, now, reserved_kw, history)
