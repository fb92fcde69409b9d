"""Deadline urgency: how much slack a session has, as a class inside its operator class (pure).

A session that says when it leaves (departure ``d``) and how much energy it
still wants (``E`` Wh: wanted less delivered) has a *laxity*

    L = (d - now) - E / P_max,        P_max = phases * 230 V * I_max

the time it could stand paused and still be full at departure if it then
charged at its maximum ``I_max``. The smaller ``L``, the more urgent. Laxity
is turned into an *urgency bucket* ``g`` (higher = more urgent):

    ==============================  ===
    laxity                          g
    ==============================  ===
    below 15 min (or negative)      11
    15 - 30 min                     10
    30 - 45 min                     9
    45 min - 1 h                    8
    1 - 1.5 h                       7
    1.5 - 2 h                       6
    2 - 3 h                         5
    3 - 4 h                         4
    4 - 6 h                         3
    6 - 8 h                         2
    8 - 12 h                        1
    12 h or more                    0
    ==============================  ===

(finer where it matters: a quarter of an hour of slack decides more when
little is left). A session without a departure or an energy wanted, or that
already has what it wanted, is in bucket 0 - so a site where nobody gives a
deadline is shared exactly as before (max-min fair, admission in arrival order).

The allocator (:mod:`smart_charging.allocation`) serves classes ``(k, g)``
lexicographically: the operator's class ``k`` first, then ``g`` inside it. So
urgency decides who gets current *among sessions of one operator class* and
never takes anything from a higher operator class (fleet, emergency). Within a
bucket, sessions share max-min fairly. Buckets are re-computed at every plan:
a session that received current gains laxity and drops to a lower bucket, one
that waited loses laxity and rises - the allocation tracks least-laxity-first
(LLF) in coarse steps, which keeps plans stable (no flapping between two EVs
of almost equal laxity) and the allocator's result deterministic.
"""

from __future__ import annotations

from datetime import datetime

VOLTAGE = 230.0
# Upper laxity bound (seconds) of each bucket, most urgent first: bucket = 11 - index.
BUCKET_BOUNDS_S = tuple(h * 3600.0 for h in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12))
MOST_URGENT = len(BUCKET_BOUNDS_S)


def laxity_s(
    now: datetime,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
    energy_wh: float | None,
    max_current_a: float,
    phases: int,
) -> float | None:
    """Laxity in seconds (see the module docstring), or None without a deadline to meet."""
    if departure_at is None or energy_wanted_wh is None:
        return None
    remaining = energy_wanted_wh - (energy_wh or 0.0)
    if remaining <= 0.0:
        return None  # it has what it asked for
    power_w = max(1, phases) * VOLTAGE * max_current_a
    if power_w <= 0.0:
        return None
    return (departure_at - now).total_seconds() - remaining * 3600.0 / power_w


def urgency_bucket(laxity: float | None) -> int:
    """The urgency class of a laxity (higher = more urgent; 0 without a deadline)."""
    if laxity is None:
        return 0
    for index, bound in enumerate(BUCKET_BOUNDS_S):
        if laxity < bound:
            return MOST_URGENT - index
    return 0


def urgency_class(
    now: datetime,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
    energy_wh: float | None,
    max_current_a: float,
    phases: int,
) -> int:
    return urgency_bucket(
        laxity_s(now, departure_at, energy_wanted_wh, energy_wh, max_current_a, phases)
    )
