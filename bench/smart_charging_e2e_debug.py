"""``SC_E2E_DEBUG=1`` output of the end-to-end benchmark (bench/smart_charging_e2e.py).

Per day: what the load manager concluded from the meter values (verdict counts),
how much capacity stayed unused while an EV wanted energy (split by that EV's
state), and every breach with each EV's draw, limit and profiles.
``SC_E2E_SNAP=1`` adds a snapshot of every EV and the last plan whenever 6 A or
more is unused. (``--explain``, bench/smart_charging_loss.py, is the finer tool.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from charge_point_sim import Fleet, SimClock
from charge_point_sim.model import Session
from csms.app import Csms

DEBUG = bool(os.environ.get("SC_E2E_DEBUG"))
VOLTAGE = 230.0


def service_of(app: Csms) -> Any:
    """The running load manager of ``app``."""
    from smart_charging.service import SmartChargingService

    return next(x for x in app.services if isinstance(x, SmartChargingService))


def explain_breach(
    fleet: Fleet,
    sessions: Mapping[str, Session],
    charger_of: Mapping[str, str],
    clock: SimClock,
    day0: datetime,
    drawn_a: float,
    limit_a: float,
) -> None:
    """What each EV draws at a breach, its limit and its profiles."""
    now = clock.now()
    print(f"breach at +{(now - day0).total_seconds():.0f} s: {drawn_a:.1f} A > {limit_a:.1f} A")
    for ev_id, s in sorted(sessions.items()):
        if s.stop_reason is not None:
            continue
        charger = fleet.charger(charger_of[ev_id])
        limit = charger.limit_w(charger.connectors[1], now) / VOLTAGE
        pilot = (s.ev.pilot_w or 0.0) / VOLTAGE
        print(f"  {ev_id} draws {s.power_w / VOLTAGE:.1f} A limit {limit:.1f} A "
              f"pilot {pilot:.1f} A delay {s.ev.delay_left_s:.1f} s full {s.ev.full}")  # fmt: skip
        for p in charger.profiles.profiles:
            limits = [(q.start, q.limit, q.phases) for q in p.periods]
            print(f"    {p.purpose} level {p.stack_level} evse {p.evse_id} {limits}")


def count_verdicts(app: Csms, clock: SimClock, verdicts: dict[str, int]) -> None:
    """Count, in ``verdicts``, what the load manager concludes from meter values."""
    svc = service_of(app)
    measure = svc._measure

    def counted(event: Any) -> Any:
        verdict = measure(event)
        name = str(verdict)
        verdicts[name] = verdicts.get(name, 0) + 1
        if verdict is not None and verdict.value == "drawing_more_than_allowed":
            at = max(str(x.sampled_at) for x in event.samples)
            print(f"  overdraw: sampled {at} judged at {clock.now().isoformat()}")
        return verdict

    svc._measure = counted


def unused(
    svc: Any,
    fleet: Fleet,
    sessions: Mapping[str, Session],
    charger_of: Mapping[str, str],
    clock: SimClock,
    limit_a: float,
    drawn_a: float,
    dt_s: float,
    waste: dict[str, float],
) -> None:
    """Capacity left unused while an EV wanted energy (Wh, added to ``waste``), by cause.

    * ``departed``: still planned for an EV that has left (the CSMS has not seen it go);
    * ``full``: offered to a present EV that is full (draws nothing);
    * ``min current``: what is left is less than a waiting EV's minimum (6 A per line);
    * ``other``: the rest (a new limit being followed, an EV not yet planned, ...).
    """
    now = clock.now()
    present = {charger_of[e]: s for e, s in sessions.items() if s.stop_reason is None}
    wanting = [s for s in present.values() if not s.ev.full]
    room_a = sum(max(0.0, s.ev.spec.max_ac_kw * 1000 - s.power_w) / VOLTAGE for s in wanting)
    unused_a = min(limit_a - drawn_a, room_a)
    if unused_a < 0.5:
        return
    departed_a = 0.0
    view = svc.views.get("s")
    for x in view.sessions if view is not None else []:
        if x["charge_point_id"] not in present:
            amps = x["uncontrolled_a"] or x["limit_a"] or 0.0
            departed_a += amps * (3 if x["phases"] == 3 else 1)
    full_a = 0.0
    for cp, s in present.items():
        if s.ev.full:
            charger = fleet.charger(cp)
            full_a += charger.limit_w(charger.connectors[1], now) / VOLTAGE
    causes = {}
    left = unused_a
    for cause, amps in (("departed", departed_a), ("full", full_a)):
        causes[cause] = min(left, amps)
        left -= causes[cause]
    paused = [s for s in wanting if s.power_w <= 0.0]
    smallest = min((6.0 * s.ev.spec.phases for s in paused), default=0.0)
    causes["min current" if paused and left < smallest else "other"] = left
    for cause, amps in causes.items():
        waste[cause] = waste.get(cause, 0.0) + amps * VOLTAGE * dt_s / 3600
    if os.environ.get("SC_E2E_SNAP") and unused_a >= 6.0:
        rows = []
        for ev_id, s in sorted(sessions.items()):
            if s.stop_reason is not None:
                continue
            charger = fleet.charger(charger_of[ev_id])
            limit = charger.limit_w(charger.connectors[1], now) / VOLTAGE
            rows.append(
                f"{ev_id}:{'F' if s.ev.full else 'w'} {s.power_w / VOLTAGE:.0f}/{limit:.0f}"
            )
        print(f"  unused {unused_a:.1f} A: " + " ".join(rows))
        if view is not None:
            told = [
                f"{x['charge_point_id'][-2:]}:{x['planned_a']}/{x['limit_a']}"
                f"{'i' if x['idle'] else ''}{'u' if x['uncontrolled_a'] else ''}"
                for x in view.sessions
            ]
            print(f"    plan {view.reason} {view.allocated_a}: " + " ".join(told))
