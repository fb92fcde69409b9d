"""The failsafe share: the TxDefaultProfile limit each charger of a site falls back on.

When the CSMS is unreachable (an outage, a network cut, a restart) every
charger of a managed site applies its TxDefaultProfile to new sessions. If
every charger falls back at once, the sum of those limits must still respect
the site's connection, so the fallback is a *share* of each limit, not the
hardware maximum (which can trip the site's main fuse) nor 0 A (which leaves
every driver with nothing while the CSMS is away).

The arithmetic, for each node of the site's tree (the site, then each group
on the charger's path), and each line L1..L3 the node limits:

    line share   = line limit (A)            / chargers of the node loading that line
    total share  = power limit (kW) * 1000 / 230 V / lines loaded by the node's chargers
    node share   = min(line shares, total share)
    charger share = min(node share of every node above it, the charger's own maximum)

Summed over the chargers of a node, ``share * chargers`` never exceeds the
node's limit, whichever chargers fall back. A share below the site's
``min_current_a`` (6 A by default: IEC 61851-1 has no pilot signal below it)
would not charge anything, so such chargers get the minimum current one by
one (higher priority first, then by id) as long as it still fits under every
limit above them, and 0 A otherwise. Shares are floored to 0.1 A (the
resolution a profile is sent with), never rounded up.

A site with ``fallback_current_a`` set uses that fixed value instead (capped
at each charger's maximum): the operator's explicit choice, e.g. 0 A where
nothing may charge unplanned. Unset (the default) means the failsafe share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from smart_charging.allocation import NOMINAL_VOLTAGE, PHASES
from smart_charging.model import ChargerPlace, SiteTree

_EPS = 1e-9


def charger_lines(place: ChargerPlace) -> tuple[int, ...]:
    """Lines a charger loads: three, or L1 for a single-phase charger (as the planner)."""
    return (0, 1, 2) if place.phases == 3 else (0,)


def node_paths(tree: SiteTree) -> dict[str, tuple[str, ...]]:
    """charge_point_id -> the nodes above it, the site first (``site``, ``group:<id>``...)."""
    parents = {g.group_id: g.parent_id for g in tree.groups}
    paths: dict[str, tuple[str, ...]] = {}
    for place in tree.chargers:
        chain: list[str] = []
        group = place.group_id if place.group_id in parents else None
        seen: set[str] = set()
        while group is not None and group not in seen:  # a cycle cannot loop for ever
            seen.add(group)
            chain.append(f"group:{group}")
            parent = parents.get(group)
            group = parent if parent in parents else None
        paths[place.charge_point_id] = ("site", *reversed(chain))
    return paths


def node_limits(
    tree: SiteTree, now: datetime
) -> dict[str, tuple[tuple[float, float, float], float]]:
    """node -> (per-line limit in A, limit in A summed over the lines); inf = none."""

    def lines(limit: float | None) -> tuple[float, float, float]:
        value = math.inf if limit is None else limit
        return (value, value, value)

    def total(power_kw: float | None) -> float:
        return math.inf if power_kw is None else power_kw * 1000.0 / NOMINAL_VOLTAGE

    limits = {"site": (lines(tree.site.phase_limit_at(now)), total(tree.site.power_limit_kw))}
    for g in tree.groups:
        limits[f"group:{g.group_id}"] = (lines(g.phase_limit_a), total(g.power_limit_kw))
    return limits


def failsafe_shares(tree: SiteTree, now: datetime) -> dict[str, float]:
    """charge_point_id -> the TxDefaultProfile limit (A per line) for every charger of the site."""
    fixed = tree.site.fallback_current_a
    if fixed is not None:
        return {c.charge_point_id: min(fixed, c.max_current_a) for c in tree.chargers}
    paths = node_paths(tree)
    limits = node_limits(tree, now)
    members: dict[str, list[ChargerPlace]] = {node: [] for node in limits}
    for place in tree.chargers:
        for node in paths[place.charge_point_id]:
            members[node].append(place)
    node_share = {node: _node_share(limits[node], members[node]) for node in limits}
    minimum = tree.site.min_current_a
    shares: dict[str, float] = {}
    for place in tree.chargers:
        share = min([place.max_current_a, *(node_share[n] for n in paths[place.charge_point_id])])
        share = math.floor(share * 10 + _EPS) / 10
        shares[place.charge_point_id] = share if share >= minimum else 0.0
    if minimum > 0:
        _grant_minimum(tree, paths, limits, shares, minimum)
    return shares


def _node_share(
    limit: tuple[tuple[float, float, float], float], chargers: Iterable[ChargerPlace]
) -> float:
    per_line, total = limit
    loaded = [0] * PHASES
    for place in chargers:
        for line in charger_lines(place):
            loaded[line] += 1
    shares = [per_line[p] / loaded[p] for p in range(PHASES) if loaded[p]]
    if sum(loaded):
        shares.append(total / sum(loaded))
    return min(shares, default=math.inf)


def _grant_minimum(
    tree: SiteTree,
    paths: dict[str, tuple[str, ...]],
    limits: dict[str, tuple[tuple[float, float, float], float]],
    shares: dict[str, float],
    minimum: float,
) -> None:
    """Give ``minimum`` to chargers left at 0 A, most important first, while it fits."""
    used = {node: [0.0] * (PHASES + 1) for node in limits}
    places = {c.charge_point_id: c for c in tree.chargers}

    def add(place: ChargerPlace, amount: float) -> None:
        for node in paths[place.charge_point_id]:
            for line in charger_lines(place):
                used[node][line] += amount
                used[node][PHASES] += amount

    def fits(place: ChargerPlace, amount: float) -> bool:
        if amount > place.max_current_a + _EPS:
            return False
        for node in paths[place.charge_point_id]:
            per_line, total = limits[node]
            lines = charger_lines(place)
            if any(used[node][line] + amount > per_line[line] + _EPS for line in lines):
                return False
            if used[node][PHASES] + amount * len(lines) > total + _EPS:
                return False
        return True

    for cp, share in shares.items():
        add(places[cp], share)
    waiting = sorted(
        (c for c in tree.chargers if shares[c.charge_point_id] == 0.0),
        key=lambda c: (-c.priority, c.charge_point_id),
    )
    for place in waiting:
        if fits(place, minimum):
            shares[place.charge_point_id] = minimum
            add(place, minimum)
