"""The gap rule of the ``fair`` policy: no capacity left unused for want of a 6 A minimum (pure).

Classes are served one after the other (:mod:`smart_charging.allocation`): the
most urgent sessions of an operator class take what they can, the next class
what is left, and so on. Under congestion what is left at the end is usually
*less than a minimum*: 4 A on a site where every paused EV needs 6 A (single
phase) or 3 x 6 A (three phase). A pilot signal below 6 A means "stop", so that
gap stays unused - on the ACN-shaped days of ``python -m bench.smart_charging_quality``
it was most of what the allocator lost against the LP optimum at 10-15 %
limits (the optimum knows no minimum), and EDF and LLF lose it too.

The rule, once every urgency class of one operator class is served:

    for each paused session ``s`` of the class that wants current, most urgent first:
        short(r) = w_s(r) * m_s - left(r)   on each resource ``r`` of its path where
                                            its minimum ``m_s`` does not fit
        if no resource is short: nothing to do (it would have been admitted)
        donor ``j``: a session of the same operator class with current, the least
            urgent first (then the latest arrival, the largest id), whose path holds
            every short resource and which can give
                delta_j = max_r short(r) / w_j(r)   (rounded up to 0.1 A)
            and stay at or above its own minimum: a_j - delta_j >= m_j
        admit ``s`` at ``m_s`` and lower ``j`` by ``delta_j`` - only if the site then
            draws more in total: |L(s)| * m_s - |L(j)| * delta_j >= MIN_GAIN_A

(``w(r)``: a session's weight on a resource, 1 per line, ``|L|`` on a total.)
Every limit still holds - the donor only goes down, ``s`` fits in what is left
plus what the donor gave - and nobody goes under a minimum. The total drawn
grows by about the gap. What it costs: the donor, more urgent than ``s``, gives
``delta_j`` (at most one minimum) to a less urgent session - so urgency classes
are strict *except* for this trade, which moves at most one minimum and always
adds current. Operator classes stay strict: donors and receivers are of the same
operator class, and the rule runs before any lower class is served (which then
gets what is left, as before). Idle (full) sessions never give nor take.
Deterministic: the order of candidates and donors is a total order on the
sessions' classes, ranks and ids.
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
    members: Sequence[Session],
    currents: MutableMapping[str, float],
    loads: Mapping[str, list[tuple[Resource, int]]],
    capacity: Mapping[Resource, float],
    used: MutableMapping[Resource, float],
    resolution: float,
) -> None:
    """Apply the gap rule (module docstring) to one operator class, in place."""
    order = sorted(members, key=lambda s: (-s.urgency, s.rank, s.id))
    for s in order:
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
        donor = _donor(order, s, short, currents, loads, resolution)
        if donor is None:
            continue
        j, delta = donor
        gain = len(set(s.phases)) * need - len(set(j.phases)) * delta
        if gain < MIN_GAIN_A:
            continue
        currents[j.id] = round(currents[j.id] - delta, 6)
        for r, w in loads[j.id]:
            used[r] -= w * delta
        currents[s.id] = need
        for r, w in loads[s.id]:
            used[r] += w * need


def _donor(
    order: Sequence[Session],
    s: Session,
    short: Mapping[Resource, float],
    currents: Mapping[str, float],
    loads: Mapping[str, list[tuple[Resource, int]]],
    resolution: float,
) -> tuple[Session, float] | None:
    """The least urgent session with current that can give what ``s`` lacks, and how much."""
    for j in reversed(order):
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
