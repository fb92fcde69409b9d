"""Allocation policies of a site: who gets current first, and how it is shared (pure).

A site's ``allocation_policy`` (``PUT /api/v1/sites/{id}``) chooses the order
and the share *inside* one operator priority class; everything else - the
limits, the 6 A minimum (pause, never throttle below it), idle and full EVs
last, the time-of-use caps, decreases before increases, the failsafe - is the
same for every policy. Operator classes (fleet, emergency) come first in
every policy.

``fair`` (the default)
    deadline urgency with hysteresis (:mod:`smart_charging.urgency`), then
    max-min fair sharing inside a class, admission in arrival order; what a
    class leaves under a paused session's minimum goes to that session, not to
    a less urgent one (the gap rule, :mod:`smart_charging.gaps`).
``edf`` - earliest departure first
    each session, in order of its departure time, gets its maximum while it
    fits (what is left, if that is at least its minimum); sessions without a
    departure (or that already have the energy they asked for) come after,
    in arrival order.
``llf`` - least laxity first
    the same, in order of laxity ``L = (d - now) - E_left / P_max``
    (:func:`smart_charging.urgency.laxity_s`), recomputed at every plan, with
    no hysteresis (the classic rule: two sessions of equal laxity may trade
    places at every plan).
``fcfs`` - first come, first served
    the same, in order of the session's start.
``round-robin``
    the same, in arrival order rotated by one place every
    :data:`ROUND_ROBIN_PERIOD_S` (15 minutes): the rotation is taken from the
    plan's time (``floor(now / period) mod n``), not from state kept between
    plans, so any node planning the site at the same moment gives the same
    order.

The greedy policies are the fair allocator with one class per session: the
allocator (:func:`smart_charging.allocation.allocate`) serves classes one
after the other on what the classes before left, so a class of one session is
given ``min(its maximum, what is left on its path)``, or nothing when that is
below its minimum - and the next session in order is served on the rest.
:func:`order_sessions` only renumbers the sessions' ``urgency`` inside each
operator priority; the allocator stays one pure function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, get_args

from smart_charging.allocation import Session
from smart_charging.urgency import laxity_s, urgency_class

Policy = Literal["fair", "edf", "llf", "fcfs", "round-robin"]
POLICIES: tuple[str, ...] = get_args(Policy)
DEFAULT_POLICY: Policy = "fair"
GREEDY: frozenset[str] = frozenset(POLICIES) - {"fair"}
ROUND_ROBIN_PERIOD_S = 900.0  # round robin moves its order on by one place every 15 minutes
NO_DEADLINE = -(2**62)  # order key of a session without a deadline: after every other


def order_key(
    policy: str,
    now: datetime,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
    energy_wh: float | None,
    max_current_a: float,
    phases: int,
    charging: bool = False,
) -> int:
    """A session's ``urgency`` under ``policy`` (higher first, inside its operator class).

    ``fair``: the urgency class (:func:`smart_charging.urgency.urgency_class`, with
    hysteresis for a session that has current, ``charging``). ``edf``: minus the
    departure (epoch s); ``llf``: minus the laxity (s); both :data:`NO_DEADLINE` for a
    session without a departure or energy still wanted. ``fcfs``, ``round-robin``: 0
    (their order is the sessions' rank, see :func:`order_sessions`).
    """
    if policy == "fair":
        return urgency_class(now, departure_at, energy_wanted_wh, energy_wh, max_current_a,
                             phases, charging=charging)  # fmt: skip
    if policy not in ("edf", "llf"):
        return 0
    laxity = laxity_s(now, departure_at, energy_wanted_wh, energy_wh, max_current_a, phases)
    if laxity is None or departure_at is None:
        return NO_DEADLINE
    if policy == "edf":
        return -int(departure_at.timestamp())
    return -int(laxity // 1)


def fills_gaps(policy: str) -> bool:
    """Whether ``policy`` applies the gap rule (:mod:`smart_charging.gaps`): ``fair`` only.

    The greedy policies are the classic schedulers as defined (each session its maximum
    or what is left, if that is at least its minimum, else nothing), for comparison.
    """
    return policy not in GREEDY


def order_sessions(policy: str, sessions: Sequence[Session], now: datetime) -> list[Session]:
    """The sessions with their ``urgency`` set for ``policy`` (a pure function).

    ``fair``: unchanged. A greedy policy: inside each operator priority, the active
    (not idle) sessions get distinct classes ``n .. 1`` in the policy's order - by
    ``urgency`` (the :func:`order_key`) descending, then rank (start), then id; round
    robin by rank and id, rotated by the plan time. Idle sessions keep the lowest class.
    """
    if policy not in GREEDY:
        return list(sessions)
    groups: dict[int, list[Session]] = {}
    for s in sessions:
        if not s.idle:
            groups.setdefault(s.priority, []).append(s)
    renumbered: dict[str, Session] = {}
    for members in groups.values():
        if policy == "round-robin":
            ordered = sorted(members, key=lambda s: (s.rank, s.id))
            shift = int(now.timestamp() // ROUND_ROBIN_PERIOD_S) % len(ordered)
            ordered = ordered[shift:] + ordered[:shift]
        else:
            ordered = sorted(members, key=lambda s: (-s.urgency, s.rank, s.id))
        for index, s in enumerate(ordered):
            renumbered[s.id] = dataclasses.replace(s, urgency=len(ordered) - index)
    return [renumbered.get(s.id, s) for s in sessions]
