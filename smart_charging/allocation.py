"""Allocation of charging current: a pure function from limits and sessions to limits.

Input
=====
A tree of :class:`Node` (site -> groups such as feeders and circuits ->
chargers -> connectors; any depth). Every node ``n`` has a per-phase limit
``C[n, p]`` in ampere for the lines ``p`` in {L1, L2, L3}, and optionally a
*total* limit ``T[n]`` (ampere summed over the three lines: a kW limit
``P`` at nominal voltage ``V`` is ``T = P / V``). Every active
:class:`Session` hangs below one node (normally its connector) and loads a
set of lines ``L(i)`` (all three, or one for a single-phase EV or connector),
has a minimum current ``m_i`` (6 A by IEC 61851), a maximum ``M_i`` (what the
EV, the cable and the connector can take), an optional *observed* maximum
``o_i`` (what its meter values show it really draws when it draws clearly
less than it is offered), a priority class ``k_i`` (higher first) and a
rank ``r_i`` (arrival order; earlier first).

Output
======
One current ``a_i`` per session, in ampere per phase, with

* **feasibility**: for every node ``n`` and line ``p``:
  ``sum(a_i : i below n, p in L(i)) <= C[n, p]`` and
  ``sum(|L(i)| * a_i : i below n) <= T[n]``;
* **pause, never throttle below the minimum**: ``a_i = 0`` or
  ``m_i <= a_i <= u_i`` where ``u_i = max(m_i, min(M_i, o_i))`` is the
  effective cap (an EV that draws little is still offered its minimum,
  because a pilot signal below ``m_i`` means "stop");
* **strict priority**: the allocation of class ``k`` is exactly what it would
  be if no class below ``k`` existed; classes are solved one after the other
  on what the classes above left (``residual``). A class is the triple
  ``(active, k_i, g_i)`` compared lexicographically: every *idle* session (a
  full or idle EV, ``active = 0``; capped at its minimum) comes after every
  other, then the operator's class ``k_i``, then the *urgency* ``g_i`` within
  it (:mod:`smart_charging.urgency`; 0 without a deadline), so urgency orders
  sessions inside an operator class and never across two. One exception, with
  ``fill_gaps`` (the ``fair`` policy): what an urgency class leaves under the
  minimum of one of its paused sessions goes to that session - a session of
  the same operator class already served gives the part that is missing -
  before any less urgent class is served (:mod:`smart_charging.gaps`);
* **max-min fairness within a class** (water-filling): raise a common level
  ``t`` from 0; each admitted session gets ``a_i(t) = min(u_i, max(m_i, t))``;
  when a resource (a node's line or its total) becomes saturated, every
  session through it is frozen at its current value. The result is the
  max-min fair allocation of the admitted set under the lower bounds ``m_i``:
  every session below its cap has a saturated resource on its path on which
  no session that could give anything back (``a_j > m_j``) has more than it;
  so no session can gain without one with an equal or lower allocation
  losing;
* **admission in arrival order**: before filling, the sessions of a class
  are admitted greedily in ``(rank, id)`` order if their minimum still fits
  on every resource of their path; the others are paused (``a_i = 0``), so a
  pause is always justified: the paused session's minimum did not fit next
  to the minimums of the earlier sessions of its class and the allocations
  of the classes above;
* **unused headroom is redistributed**: capping a session at what it really
  draws (``o_i``) lowers ``u_i`` and the filling hands what it leaves to the
  others: the classes above are unchanged and the allocation of the other
  sessions of its class becomes leximin-better (sorted ascending, the first
  value that changes goes up). One session may still get less: when the
  freed capacity lets a session that shares another line with it grow, and it
  had more than that session (max-min fairness, not monotonicity);
* **determinism**: the result depends only on the input values (sessions and
  nodes are sorted by their ids, ties broken by ids), never on input order.

Algorithm
=========
Progressive filling driven by events in a heap, with per-resource linear
bookkeeping: at level ``t`` a resource's usage is ``fixed + rate * t`` where
``rate`` is the summed weight of the sessions still growing through it (a
session's weight is 1 on each of its lines and ``|L(i)|`` on the total), so
the resource saturates at ``t* = (capacity - fixed) / rate``. Three events
move the level: a session's minimum is reached (it starts growing), a
session reaches its cap (it stops), a resource saturates (everything through
it stops). Each session changes state at most three times and touches its
path (depth ``D``) each time: ``O(N * D * log N)``.

Results are rounded *down* to ``resolution`` (0.1 A: what OCPP profiles
carry), so rounding never breaks a limit.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from smart_charging.gaps import fill

PHASES = 3
TOTAL = PHASES  # resource index of a node's summed-over-lines limit
DEFAULT_MIN_CURRENT = 6.0  # A; IEC 61851-1: below this a pilot signal means "no charging"
NOMINAL_VOLTAGE = 230.0  # V, phase to neutral; used to turn kW limits into A
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Node:
    """One limit in the tree. ``parent`` None = a root (a site)."""

    id: str
    parent: str | None
    phase_limits: tuple[float, float, float] = (math.inf, math.inf, math.inf)
    total_limit: float = math.inf  # A summed over the three lines (kW * 1000 / 230)


@dataclass(frozen=True, slots=True)
class Session:
    """One active session asking for current. Currents are per phase, in A."""

    id: str
    node: str  # the node it hangs under (its connector, usually)
    phases: tuple[int, ...] = (0, 1, 2)  # lines it loads: 0 = L1, 1 = L2, 2 = L3
    max_current: float = 32.0
    min_current: float = DEFAULT_MIN_CURRENT
    priority: int = 0  # higher classes are served first
    rank: float = 0.0  # arrival order (e.g. start time); earlier is admitted first
    observed_max: float | None = None  # what it really draws, when clearly below its offer
    urgency: int = 0  # within its priority class, higher first (deadline laxity buckets)
    idle: bool = False  # full or idle EV: after every other class, offered its minimum only

    @property
    def klass(self) -> tuple[int, int, int]:
        """The class it is served in (higher first): active before idle, priority, urgency."""
        return (0 if self.idle else 1, self.priority, self.urgency)

    @property
    def cap(self) -> float:
        """Effective cap ``u_i``: never below the minimum it would be offered."""
        if self.idle:
            return self.floor
        drawn = self.max_current if self.observed_max is None else self.observed_max
        return max(self.floor, min(self.max_current, drawn))

    @property
    def floor(self) -> float:
        """Effective minimum; a session whose maximum is below 6 A may charge at that maximum."""
        return min(self.min_current, self.max_current)


class InvalidTree(ValueError):
    """A node names an unknown parent, the parents form a cycle, or a session an unknown node."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """Each session's current (A per phase); 0 = paused."""

    currents: Mapping[str, float]

    def paused(self) -> list[str]:
        return sorted(i for i, a in self.currents.items() if a <= 0.0)


def node_paths(nodes: Iterable[Node]) -> dict[str, tuple[str, ...]]:
    """Each node's path from itself up to its root (itself first). Raises InvalidTree."""
    by_id = {n.id: n for n in nodes}
    paths: dict[str, tuple[str, ...]] = {}
    for start in sorted(by_id):
        chain: list[str] = []
        seen: set[str] = set()
        current: str | None = start
        while current is not None and current not in paths:
            if current in seen:
                raise InvalidTree(f"node {current!r} is its own ancestor")
            seen.add(current)
            node = by_id.get(current)
            if node is None:
                raise InvalidTree(f"node {chain[-1]!r} names unknown parent {current!r}")
            chain.append(current)
            current = node.parent
        tail = paths[current] if current is not None else ()
        for index, node_id in enumerate(chain):
            paths[node_id] = (*chain[index:], *tail)
    return paths


def allocate(
    nodes: Sequence[Node],
    sessions: Sequence[Session],
    resolution: float = 0.1,
    *,
    fill_gaps: bool = False,
) -> Allocation:
    """Each session's current under every limit of ``nodes`` (see the module docstring).

    ``fill_gaps``: the gap rule of the ``fair`` policy (:mod:`smart_charging.gaps`): once
    a class is served, a session of it paused because its minimum does not fit in what
    is left is admitted at that minimum when a session of the same operator class
    already served can give the part that is missing - before any less urgent class
    takes what is left.
    """
    paths = node_paths(nodes)
    capacity: dict[tuple[str, int], float] = {}
    for node in nodes:
        for p in range(PHASES):
            capacity[(node.id, p)] = max(0.0, node.phase_limits[p])
        capacity[(node.id, TOTAL)] = max(0.0, node.total_limit)
    currents: dict[str, float] = {}
    for s in sessions:
        if s.node not in paths:
            raise InvalidTree(f"session {s.id!r} hangs under unknown node {s.node!r}")
    # Once per session, and only the limits that exist: an infinite one never binds.
    finite = {r for r, c in capacity.items() if math.isfinite(c)}
    loads = {s.id: [(r, w) for r, w in _resources(s, paths) if r in finite] for s in sessions}
    used = dict.fromkeys(finite, 0.0)
    by_class: dict[tuple[int, int, int], list[Session]] = {}
    for s in sorted(sessions, key=lambda s: s.id):
        by_class.setdefault(s.klass, []).append(s)
    classes = sorted(by_class, reverse=True)
    served: list[Session] = []  # the gap rule's donors: this operator class's, most urgent first
    operator_class: tuple[int, int] | None = None
    for priority in classes:
        # Only the resources this class loads: with one class per minute of laxity a
        # site can have as many classes as sessions.
        mine = {r for s in by_class[priority] for r, _ in loads[s.id]}
        residual = {r: capacity[r] - used[r] for r in mine}
        exact = _fill_class(by_class[priority], loads, residual)
        for s in by_class[priority]:
            amps = _round_down(exact.get(s.id, 0.0), resolution)
            if amps < s.floor - _EPS:
                # Only reachable by float noise around the minimum: the minimum was reserved.
                amps = s.floor if exact.get(s.id, 0.0) >= s.floor - 1e-6 else 0.0
            currents[s.id] = amps
            if amps > 0.0:
                for r, weight in loads[s.id]:
                    used[r] += weight * amps
        if fill_gaps and priority[0] == 1:
            # Before any less urgent class is served: what this one left under a paused
            # session's minimum goes to that session, not to a less urgent one.
            if priority[:2] != operator_class:
                served, operator_class = [], priority[:2]
            served.extend(sorted(by_class[priority], key=lambda s: (s.rank, s.id)))
            fill(by_class[priority], served, currents, loads, capacity, used, resolution)
    return Allocation(currents)


def _round_down(value: float, resolution: float) -> float:
    if resolution <= 0:
        return value
    return round(math.floor(value / resolution + _EPS) * resolution, 6)


def _resources(
    s: Session, paths: Mapping[str, tuple[str, ...]]
) -> list[tuple[tuple[str, int], int]]:
    """(resource, weight) pairs a session loads: each line of each ancestor, and totals."""
    lines = sorted(set(s.phases))
    out: list[tuple[tuple[str, int], int]] = []
    for node_id in paths[s.node]:
        out.extend(((node_id, p), 1) for p in lines)
        out.append(((node_id, TOTAL), len(lines)))
    return out


# Event kinds, in the order they are handled at the same level: a saturation freezes
# sessions before a cap or a start at that level could change the bookkeeping.
_SATURATE, _CAP, _START = 0, 1, 2


def _fill_class(
    sessions: Sequence[Session],
    resources: Mapping[str, list[tuple[tuple[str, int], int]]],
    residual: dict[tuple[str, int], float],
) -> dict[str, float]:
    """Admit in arrival order, then water-fill one priority class on ``residual``."""
    floor = {s.id: s.floor for s in sessions}  # the properties, computed once
    cap = {s.id: s.cap for s in sessions}
    admitted: list[Session] = []
    for s in sorted(sessions, key=lambda s: (s.rank, s.id)):
        need = floor[s.id]
        if all(residual[r] - w * need >= -_EPS for r, w in resources[s.id]):
            for r, w in resources[s.id]:
                residual[r] -= w * need
            admitted.append(s)
    # Bookkeeping per resource: usage(t) = fixed + rate * t (see module docstring).
    fixed: dict[tuple[str, int], float] = {}
    rate: dict[tuple[str, int], int] = {}
    version: dict[tuple[str, int], int] = {}
    members: dict[tuple[str, int], list[Session]] = {}
    capacity: dict[tuple[str, int], float] = {}
    value: dict[str, float] = {}
    state: dict[str, int] = {}  # 0 waiting at its minimum, 1 growing, 2 frozen
    heap: list[tuple[float, int, str, int, int]] = []
    for s in admitted:
        value[s.id] = floor[s.id]
        state[s.id] = 0
        for r, w in resources[s.id]:
            if r not in fixed:
                # What the class may use: its minimums are already taken out of residual.
                fixed[r], rate[r], version[r], members[r] = 0.0, 0, 0, []
            fixed[r] += w * floor[s.id]
            members[r].append(s)
        if cap[s.id] > floor[s.id] + _EPS:
            heapq.heappush(heap, (floor[s.id], _START, s.id, 0, 0))
        else:
            state[s.id] = 2
    for r in fixed:
        capacity[r] = residual[r] + fixed[r]  # what this class may put on r in total
    by_id = {s.id: s for s in admitted}
    saturated: set[tuple[str, int]] = set()
    resource_names = {r: f"{r[0]}\x00{r[1]}" for r in fixed}
    resource_of = {name: r for r, name in resource_names.items()}

    def push_saturation(r: tuple[str, int]) -> None:
        version[r] += 1
        if rate[r] > 0:
            level = (capacity[r] - fixed[r]) / rate[r]
            heapq.heappush(heap, (level, _SATURATE, resource_names[r], version[r], 0))

    touched: set[tuple[str, int]] = set()  # resources whose saturation level moved

    def stop(s: Session, at: float) -> None:
        """Freeze a growing session at ``at`` (its value from then on)."""
        state[s.id] = 2
        value[s.id] = at
        for r, w in resources[s.id]:
            fixed[r] += w * at
            rate[r] -= w
            touched.add(r)

    while heap:
        level, kind, name, ver, _ = heapq.heappop(heap)
        # A stale entry (a session frozen meanwhile, an outdated saturation level)
        # changes nothing, but must still reach the recompute below: skipping it
        # left a resource touched earlier in the batch without a saturation level.
        if kind == _START:
            s = by_id[name]
            if state[s.id] == 0:
                state[s.id] = 1
                for r, w in resources[s.id]:
                    fixed[r] -= w * floor[s.id]
                    rate[r] += w
                    touched.add(r)
                heapq.heappush(heap, (cap[s.id], _CAP, s.id, 0, 0))
        elif kind == _CAP:
            s = by_id[name]
            if state[s.id] == 1:
                stop(s, cap[s.id])
        else:
            r = resource_of[name]
            if ver == version[r] and r not in saturated:
                saturated.add(r)
                for s in members[r]:
                    if state[s.id] == 1:
                        stop(s, max(floor[s.id], min(cap[s.id], level)))
                    elif state[s.id] == 0:
                        state[s.id] = 2  # waiting at its minimum: it can never grow now
        if heap and heap[0][0] == level and heap[0][1] == kind and kind != _SATURATE:
            continue  # starts or caps at one level: recompute each resource once for all
        for r in touched:
            if r not in saturated:
                push_saturation(r)
        touched.clear()
    return value
