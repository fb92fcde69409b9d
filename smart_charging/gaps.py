"""The gap rule of the ``fair`` policy: the most urgent waiting EV gets what is left (pure).

Classes are served one after the other (:mod:`smart_charging.allocation`): the
most urgent sessions of an operator class take what they can, the next class
what is left, and so on. Under congestion what a class leaves is often *less
than the minimum* of its next session: 16 A summed over the lines where a
three-phase EV needs 3 x 6 A. A pilot signal below 6 A means "stop", so a
strict order pauses that EV and hands the 16 A to a *less urgent* class - an EV
with hours of slack that would have charged on its own at the end of the day -
or leaves them unused when nobody can take them. On the ACN-shaped days of
``python -m bench.smart_charging_quality`` that was most of what the allocator
lost against the LP optimum at 10-15 % limits (the optimum knows no minimum);
EDF and LLF lose it too.

The rule, right after each class ``c`` of an operator class is served and
before any less urgent class:

    for each session ``s`` of ``c`` paused although it wants current (arrival order):
        short(r) = w_s(r) * m_s - left(r)   on each resource ``r`` of its path where
                                            its minimum ``m_s`` does not fit
        if no resource is short: nothing to do
        donor ``j``: a session already served in this operator class (``c`` or more
            urgent; for ``c = 0``, no deadline to meet, only class 0) with current,
            the least urgent first (then the latest arrival, the largest id), whose
            path holds every short resource and which can give
                delta_j = max_r short(r) / w_j(r)   (rounded up to 0.1 A)
            and stay at or above its own minimum: a_j - delta_j >= m_j
        admit ``s`` at ``m_s`` and lower ``j`` by ``delta_j`` - only if the classes
            served so far then draw more in total: |L(s)| m_s - |L(j)| delta_j >= MIN_GAIN_A

(``w(r)``: a session's weight on a resource, 1 per line, ``|L|`` on a total.)
Every limit still holds - the donor only goes down, ``s`` fits in what was left
plus what the donor gave - and nobody goes under a minimum. What it moves: the
donor, at least as urgent as ``s``, gives ``delta_j`` (less than one minimum:
the part of ``m_s`` that was not left) so that ``s`` charges; the less urgent
classes get what is left after that (less by about the gap). So urgency classes
are strict *except* for this: the leftover under a minimum goes to the most
urgent session waiting for it. Operator classes stay strict: donors and
receivers are of the same operator class, and a lower operator class is served
on what the higher one left, as before. A session of urgency class 0 - no
deadline given, or an EV still plugged in after its departure
(:mod:`smart_charging.urgency`) - takes only from class 0: a session with a
deadline to meet never gives to one without. Idle (full) sessions never give nor
take. Deterministic: candidates and donors are taken in a total order of
classes, ranks and ids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smart_charging.allocation import Session

Resource = tuple[str, int]
MIN_GAIN_A = 1.0  # a trade must add at least this much current (A summed over lines)
_EPS = 1e-9


def fill(
    waiting: Sequence[Session],
    served: Sequence[Session],
    currents: MutableMapping[str, float],
    loads: Mapping[str, list[tuple[Resource, int]]],
    capacity: Mapping[Resource, float],
    used: MutableMapping[Resource, float],
    resolution: float,
) -> None:
    """Apply the gap rule (module docstring) to the paused sessions of ``waiting`` (one
    class, just served), with donors from ``served`` (the classes of its operator class
    served so far, itself included, most urgent first), in place."""
    for s in sorted(waiting, key=lambda s: (s.rank, s.id)):
        if currents[s.id] > 0.0 or s.floor <= 0.0 or s.cap <= 0.0:
            continue
        need = s.floor
        short = {
            r: w * need - (capacity[r] - used[r])
            for r, w in loads[s.id]
            if w * need > capacity[r] - used[r] + _EPS
        }
        if not short:
            continue
        # Any donor gives at least the largest shortfall in total (|L(j)| delta_j >=
        # short(r) on a line, = on a total): no trade can add MIN_GAIN_A when that is
        # most of the minimum - as on a full site - so no donor is looked for then.
        if len(set(s.phases)) * need - max(short.values()) < MIN_GAIN_A:
            continue
        # A session without a deadline to meet (class 0: none given, or its departure
        # has passed) takes nothing from one that has: it asks only its own class.
        donors = served if s.urgency > 0 else [j for j in served if j.urgency <= 0]
        donor = _donor(donors, s, short, currents, loads, resolution)
        if donor is None:
            continue
        j, delta = donor
        if len(set(s.phases)) * need - len(set(j.phases)) * delta < MIN_GAIN_A:
            continue
        currents[j.id] = round(currents[j.id] - delta, 6)
        for r, w in loads[j.id]:
            used[r] -= w * delta
        currents[s.id] = need
        for r, w in loads[s.id]:
            used[r] += w * need


def _donor(
    served: Sequence[Session],
    s: Session,
    short: Mapping[Resource, float],
    currents: Mapping[str, float],
    loads: Mapping[str, list[tuple[Resource, int]]],
    resolution: float,
) -> tuple[Session, float] | None:
    """The least urgent of ``served`` with current that can give what ``s`` lacks, and
    how much."""
    for j in reversed(served):
        if j.id == s.id or currents[j.id] <= 0.0:
            continue
        weights = dict(loads[j.id])
        if not all(r in weights for r in short):
            continue
        delta = max(short[r] / weights[r] for r in short)
        if resolution > 0:
            delta = math.ceil(delta / resolution - _EPS) * resolution
        if currents[j.id] - delta >= j.floor - _EPS:
            return j, delta
    return None
