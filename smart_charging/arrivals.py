"""Room for arrivals: the TxDefaultProfile limit of every charger, planned with the sessions.

A session starts under its charger's TxDefaultProfile and draws it until its
first TxProfile arrives - and for good while the CSMS is unreachable. So the
load manager keeps, for every node of a site (the site, its groups, each
charger) and every line, at every moment:

    sum over the connectors below the node of
        max(limit of the session on it, TxDefault of its charger)   <= node limit

(a free connector has no session: it counts its TxDefault; a busy one counts its
session's TxProfile limit, or the TxDefault of the next session should this one
end while the CSMS is away). The TxDefault limits are planned with the sessions:

1. the sessions are allocated first, on the node limits less what cannot be
   changed now (set-aside sessions; the TxDefault of a charger that is offline or
   refused its last one) and less the site's ``arrival_reserve_a`` per line while
   a charger has a free connector;
2. what the allocation leaves on every node (*headroom*) is shared between the
   free connectors by the failsafe arithmetic (:func:`failsafe.shares_within`:
   the limits hold even if every one of them starts a session at once; below the
   site's minimum current a charger gets 0 A or the minimum, most important first);
3. each charger's TxDefault target is the lowest of its failsafe share (the
   ceiling: what it may hold when the whole site is idle), its share of the
   headroom (if it has a free connector) and the limit of each session it runs;
4. a target below what the charger may apply now is a decrease, sent with the
   sessions' decreases before anything goes up; a target above it is sent with
   the increases, after the settle time, and only when it is worth a message
   (:data:`RAISE_STEP_A` more, or the ceiling) and the charger has a free
   connector - keeping a lower TxDefault is always safe, so a raise may wait
   (hysteresis against chatter).

Pure functions; the planner (:mod:`smart_charging.planning`) sends the changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from smart_charging.allocation import PHASES, Node, Session
from smart_charging.failsafe import shares_within
from smart_charging.model import SiteTree, charger_node

RAISE_STEP_A = 1.0  # a TxDefault goes up only by at least this much (or to its ceiling)
_TOLERANCE_A = 0.05  # profiles carry 0.1 A: smaller differences are no change


@dataclass(frozen=True, slots=True)
class DefaultChange:
    """A TxDefaultProfile limit to send to one charger."""

    charge_point_id: str
    limit: float
    previous: float | None  # what it may apply now; None = unknown (e.g. after a reboot)
    phases: int

    @property
    def is_decrease(self) -> bool:
        """Sent with the decreases: lower than now, or a charger whose value is unknown."""
        return self.previous is None or self.limit < self.previous


def hold_for_arrivals(nodes: Sequence[Node], held_a: float) -> tuple[Node, ...]:
    """The nodes with ``held_a`` per line (3x on a total limit) taken off the site (rule 1)."""
    if held_a <= 0:
        return tuple(nodes)
    return tuple(
        replace(
            n,
            phase_limits=(
                max(0.0, n.phase_limits[0] - held_a),
                max(0.0, n.phase_limits[1] - held_a),
                max(0.0, n.phase_limits[2] - held_a),
            ),
            total_limit=max(0.0, n.total_limit - PHASES * held_a),
        )
        if n.parent is None
        else n
        for n in nodes
    )


def headroom(
    nodes: Sequence[Node], sessions: Sequence[Session], currents: Mapping[str, float]
) -> dict[str, tuple[tuple[float, float, float], float]]:
    """node -> (per-line A, total A) its limits leave once ``currents`` are drawn."""
    parent = {n.id: n.parent for n in nodes}
    used = {n.id: [0.0] * (PHASES + 1) for n in nodes}
    for s in sessions:
        amount = currents.get(s.id, 0.0)
        node: str | None = s.node
        while node is not None:
            for line in s.phases:
                used[node][line] += amount
            used[node][PHASES] += amount * len(s.phases)
            node = parent.get(node)
    return {
        n.id: (
            (
                max(0.0, n.phase_limits[0] - used[n.id][0]),
                max(0.0, n.phase_limits[1] - used[n.id][1]),
                max(0.0, n.phase_limits[2] - used[n.id][2]),
            ),
            max(0.0, n.total_limit - used[n.id][PHASES]),
        )
        for n in nodes
    }


def default_targets(
    tree: SiteTree,
    room: Mapping[str, tuple[tuple[float, float, float], float]],
    ceilings: Mapping[str, float],
    free: Mapping[str, int],
    session_limits: Mapping[str, Sequence[float]],
    steerable: set[str],
) -> dict[str, float]:
    """charge_point_id -> its TxDefault target, for the ``steerable`` chargers (rule 3).

    ``room``: the headroom of every node (:func:`headroom`; charger nodes included);
    ``free``: free connectors per charger; ``session_limits``: the limits of the
    sessions each charger runs (TxProfile, or the load set aside for it).
    """
    capped: dict[str, float] = {}
    for place in tree.chargers:
        cp = place.charge_point_id
        count = free.get(cp, 0)
        if cp not in steerable or count <= 0:
            continue
        per_line, _ = room.get(charger_node(cp), ((math.inf,) * 3, math.inf))
        lines = per_line[:1] if place.phases == 1 else per_line
        capped[cp] = min(ceilings.get(cp, 0.0), min(lines) / count)
    shares = shares_within(tree, room, {cp: free[cp] for cp in capped}, capped)
    targets: dict[str, float] = {}
    for cp in sorted(steerable):
        target = min([ceilings.get(cp, 0.0), *session_limits.get(cp, ())])
        if cp in shares:
            target = min(target, shares[cp])
        targets[cp] = math.floor(max(target, 0.0) * 10 + 1e-9) / 10
    return targets


def default_changes(
    tree: SiteTree,
    targets: Mapping[str, float],
    applied: Mapping[str, float],
    ceilings: Mapping[str, float],
    free: Mapping[str, int],
) -> list[DefaultChange]:
    """What to send (rule 4): every decrease; a raise only by a step or to the ceiling, and
    only on a charger with a free connector (on a busy one it waits until a session ends)."""
    phases = {c.charge_point_id: c.phases for c in tree.chargers}
    changes = []
    for cp, target in sorted(targets.items()):
        now = applied.get(cp)
        if now is not None and abs(target - now) < _TOLERANCE_A:
            continue
        if now is not None and target > now:
            if free.get(cp, 0) <= 0:
                continue
            at_ceiling = target >= ceilings.get(cp, 0.0) - _TOLERANCE_A
            if target - now < RAISE_STEP_A and not at_ceiling:
                continue  # lower is safe: wait until it is worth a message
        changes.append(DefaultChange(cp, target, now, phases.get(cp, 3)))
    return changes
