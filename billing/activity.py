"""Charging versus idle time of a session, from its states and power samples.

A session is *idle* (parking) while the EV takes no energy although it is
plugged in: the state says so (2.0.1 chargingState SuspendedEV / EVConnected /
Idle, 1.6 status SuspendedEV / Finishing / Preparing), or the active power is
at most :data:`IDLE_POWER_W`. SuspendedEVSE -- the charger, not the EV,
withholds power (e.g. smart charging) -- is never idle: the driver is not made
to pay parking for the operator's pause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

IDLE_POWER_W = Decimal(50)  # below this an EV is not charging (standby draw, noise)

IDLE_STATES = frozenset({"SuspendedEV", "EVConnected", "Idle", "Finishing", "Preparing"})
CHARGING_STATES = frozenset({"Charging"})
OPERATOR_PAUSE_STATES = frozenset({"SuspendedEVSE"})


@dataclass(frozen=True, slots=True)
class StateChange:
    at: datetime
    state: str  # a 2.0.1 chargingState or 1.6 connector status


@dataclass(frozen=True, slots=True)
class PowerSample:
    at: datetime
    w: Decimal


@dataclass(frozen=True, slots=True)
class Activity:
    charging: timedelta
    idle: timedelta


def _idle(state: str | None, power: Decimal | None) -> bool:
    if state in IDLE_STATES:
        return True
    if state in OPERATOR_PAUSE_STATES:
        return False
    return power is not None and power <= IDLE_POWER_W


def split_activity(
    start: datetime,
    end: datetime,
    states: Sequence[StateChange],
    power: Sequence[PowerSample],
) -> Activity:
    """Charging and idle time in [start, end]; each state/power value holds until the next."""
    if end <= start:
        return Activity(timedelta(0), timedelta(0))
    changes: list[tuple[datetime, str | None, Decimal | None]] = [
        *((s.at, s.state, None) for s in states if s.state in _KNOWN),
        *((p.at, None, p.w) for p in power),
    ]
    changes.sort(key=lambda c: c[0])
    state: str | None = None
    watts: Decimal | None = None
    charging = idle = timedelta(0)
    cursor = start
    for at, new_state, new_watts in [*changes, (end, None, None)]:
        if at > cursor:
            until = min(at, end)
            if _idle(state, watts):
                idle += until - cursor
            else:
                charging += until - cursor
            cursor = until
        if at >= end:
            break
        state = new_state if new_state is not None else state
        watts = new_watts if new_watts is not None else watts
    return Activity(charging, idle)


_KNOWN = IDLE_STATES | CHARGING_STATES | OPERATOR_PAUSE_STATES
