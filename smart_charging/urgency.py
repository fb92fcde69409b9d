"""Deadline urgency: how much slack a session has, as a class inside its operator class (pure).

A session that says when it leaves (departure ``d``) and how much energy it
still wants (``E`` Wh: wanted less delivered) has a *laxity*

    L = (d - now) - E / P_max,        P_max = phases * 230 V * I_max

the time it could stand paused and still be full at departure if it then
charged at its maximum ``I_max``. The smaller ``L``, the more urgent. Laxity
is turned into an *urgency class* ``g`` (higher = more urgent), in steps of
``STEP_S`` (30 s) over ``HORIZON_S`` (12 h), ``n = HORIZON_S / STEP_S``:

    ==========================================  ==================================
    session                                     g
    ==========================================  ==================================
    no departure or energy wanted, or it has    0 (today's fair sharing)
    what it wanted, or ``L >= 12 h``
    feasible, ``0 <= L < 12 h``                 ``n - floor(L / STEP_S)``: 1 .. n
    infeasible, ``L < 0`` (it cannot be full    ``2n - min(n - 1, floor(r / STEP_S))``
    by departure), ``r = d - now > 0`` time     : n+1 .. 2n, the one leaving first
    left                                        highest
    still plugged in after its departure,       0 (as without a deadline)
    ``r <= 0``
    ==========================================  ==================================

An EV still plugged in after the departure it announced has no deadline left
to meet: it is shared like a session without one (class 0), after every
session that can still be full by its own departure - not, as its negative
laxity would say, before all of them. Its driver said when the car would be
needed; an EV that stays on is a bonus, not an emergency, and ranking it most
urgent would let one late driver starve the EVs that can still be finished
(:func:`urgency_class`). It still charges on what those leave, and a new
departure set through the API puts it back in the deadline classes.

So a site where nobody gives a deadline is shared exactly as before (max-min
fair, admission in arrival order). With deadlines the allocation is
*least-laxity-first among the sessions that can still be full, after the ones
that cannot, earliest departure first*: an EV that cannot be full anyway takes
whatever it can before it leaves, and its current counts in full - every Wh it
gets is delivered - whereas a session with slack can still be served later,
when the EVs leaving sooner have gone. Measured on the ACN-shaped workplace
days of ``python -m bench.smart_charging_quality`` this delivers at least as
much energy as plain LLF and EDF at every limit (99.90 / 99.96 % of the optimum
at 10 / 15 %, LLF 99.87 / 99.95, EDF 99.76 / 99.54), with a fairer spread (Jain
0.78 / 0.92 against LLF's 0.72 / 0.89); with the gap rule (:mod:`smart_charging.gaps`)
99.97 / 99.98 %.

The allocator (:mod:`smart_charging.allocation`) serves classes ``(k, g)``
lexicographically: the operator's class ``k`` first, then ``g`` inside it. So
urgency decides who gets current *among sessions of one operator class* and
never takes anything from a higher operator class (fleet, emergency). Within a
class, sessions share max-min fairly. Classes are re-computed at every plan: a
session charging at its maximum keeps its laxity while one that waits loses
a second of it per second, so the waiting one overtakes - but only once it is
``HYSTERESIS_S`` (10 min) more urgent: a session that has current now is
classed with that much less slack (:func:`urgency_class`, ``charging``). Plain
LLF lets two sessions of nearly equal laxity take turns every class (30 s);
in a real site every turn costs the seconds the EVs need to follow (the
decrease, the settle time, the lag and ramp of the one raised), and the end to
end benchmark lost about as much to those turns as to everything else
together. With the hysteresis, at most one turn per ``2 * HYSTERESIS_S``; the
pure benchmark is unchanged to 0.005 points. Sessions in the same class share
and, both below their maximum, lose laxity together - so they stay together.
The allocator's result stays deterministic (a pure function of the inputs,
``now`` and whether each session has current now).
"""

from __future__ import annotations

from datetime import datetime

VOLTAGE = 230.0
STEP_S = 30.0  # one class per half minute of laxity (or of time left, when infeasible)
HORIZON_S = 12 * 3600.0  # laxity beyond this is not urgent at all (class 0)
STEPS = int(HORIZON_S / STEP_S)
MOST_URGENT = 2 * STEPS
HYSTERESIS_S = 600.0  # one that charges keeps its place until another is this much more urgent
PAST_DEPARTURE = 0  # the class of a session still plugged in after its announced departure


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


def urgency_bucket(laxity: float | None, time_left_s: float = 0.0) -> int:
    """The urgency class (higher = more urgent; 0 without a deadline): see the docstring.

    ``time_left_s`` (until departure) orders the sessions that cannot be full (``laxity < 0``).
    """
    if laxity is None or laxity >= HORIZON_S:
        return 0
    if laxity >= 0.0:
        return STEPS - int(laxity // STEP_S)
    return MOST_URGENT - min(STEPS - 1, int(max(0.0, time_left_s) // STEP_S))


def urgency_class(
    now: datetime,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
    energy_wh: float | None,
    max_current_a: float,
    phases: int,
    charging: bool = False,
    hysteresis_s: float = HYSTERESIS_S,
) -> int:
    """The urgency class of a session (see the module docstring).

    ``charging``: the session has current now (its accepted limit is above 0). It is
    classed as if it had ``hysteresis_s`` less slack (or left that much sooner), so
    a waiting session takes its current only once it is clearly more urgent, not
    one class (30 s) later: each change of who charges costs the site the seconds
    the EVs need to follow (decreases first, the settle time, the lag and ramp of
    the one raised), and two sessions of equal slack would otherwise trade places
    every minute. Two sessions then swap at most every ``2 * hysteresis_s``.
    """
    laxity = laxity_s(now, departure_at, energy_wanted_wh, energy_wh, max_current_a, phases)
    if laxity is None or departure_at is None:
        return 0
    time_left = (departure_at - now).total_seconds()
    if time_left <= 0.0:
        return PAST_DEPARTURE  # its deadline is gone: no claim above those that can be full
    if charging:
        # Within its tier: a feasible session stays feasible (its class at most the
        # most urgent feasible one), an infeasible one is ordered as leaving sooner.
        laxity = max(0.0, laxity - hysteresis_s) if laxity >= 0.0 else laxity
        time_left = max(0.0, time_left - hysteresis_s) if laxity < 0.0 else time_left
    return urgency_bucket(laxity, time_left)
