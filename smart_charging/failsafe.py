"""The failsafe share: the TxDefaultProfile limit each charger of a site falls back on.

When the CSMS is unreachable (an outage, a network cut, a restart) every
charger of a managed site applies its TxDefaultProfile to new sessions. If
every charger falls back at once, the sum of those limits must still respect
the site's connection, so the fallback is a *share* of each limit, not the
hardware maximum (which can trip the site's main fuse) nor 0 A (which leaves
every driver with nothing while the CSMS is away).

The budget of every node of the site's tree (the site, then each group on a
charger's path; each line L1..L3 it limits, and its power limit as amperes over
the lines) is shared by what can draw from it: every connector (EVSE) of every
charger below it, as evenly as the limits allow (progressive filling):

    all connectors rise together from 0 A; a charger stops rising at its cap,
    its connectors at the most each may draw (its ``max_current_a`` shared by
    its connectors, at most a connector's own maximum); a node that is full
    stops every charger below it.

So a two-connector charger holds two connectors' worth (each may start a
session while the CSMS is away) but never more than the charger itself can
draw, and what a capped charger cannot use goes to the others instead of being
held for nothing. Summed over the connectors of a node, the shares never exceed
the node's limit, whichever chargers fall back. A share below the site's
``min_current_a`` (6 A by default: IEC 61851-1 has no pilot signal below it)
would not charge anything, so such chargers get the minimum current one by
one (higher priority first, then by id) as long as it still fits under every
limit above them, and 0 A otherwise. Shares are floored to 0.1 A (the
resolution a profile is sent with), never rounded up.

A site with ``fallback_current_a`` set caps the share at that value: the
operator's explicit choice, e.g. 0 A where nothing may charge unplanned; a
value above the share is not used (it could not hold if every charger fell
back at once). Unset (the default) means the failsafe share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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
    """charge_point_id -> the TxDefaultProfile ceiling (A per line) of every charger of the site.

    What each charger may hold while the whole site is idle; the planner lowers it
    to what the sessions leave (:mod:`smart_charging.arrivals`). A site's fixed
    ``fallback_current_a`` caps it: never more than the operator's value, never
    more than the share that keeps every charger falling back at once under the limits.
    """
    shares = shares_within(
        tree,
        node_limits(tree, now),
        {c.charge_point_id: c.connectors for c in tree.chargers},
        {c.charge_point_id: connector_cap(c) for c in tree.chargers},
    )
    fixed = tree.site.fallback_current_a
    if fixed is not None:
        return {cp: min(fixed, share) for cp, share in shares.items()}
    return shares


def connector_cap(place: ChargerPlace) -> float:
    """The most each connector of a charger may draw with all of them drawing at once.

    The TxDefaultProfile (connector/EVSE 0) applies to every connector, so the
    charger's maximum is shared by its connectors; no connector above its own maximum.
    """
    own = place.connector_max_current_a
    shared = place.max_current_a / max(1, place.connectors)
    return shared if own is None else min(own, shared)


def shares_within(
    tree: SiteTree,
    limits: Mapping[str, tuple[tuple[float, float, float], float]],
    connectors: Mapping[str, int],
    caps: Mapping[str, float],
) -> dict[str, float]:
    """charge_point_id -> a limit per connector for the chargers named in ``connectors``.

    Every one of a charger's ``connectors[cp]`` connectors drawing its limit at once,
    on every charger named, stays under ``limits`` of every node above it; the
    limits are filled progressively (the module docstring), each at most
    ``caps[cp]``. Chargers of ``tree`` not named draw nothing.
    """
    paths = node_paths(tree)
    places = [c for c in tree.chargers if connectors.get(c.charge_point_id, 0) > 0]
    cap = {
        c.charge_point_id: max(0.0, caps.get(c.charge_point_id, c.max_current_a)) for c in places
    }
    levels = _fill(places, paths, limits, connectors, cap)
    minimum = tree.site.min_current_a
    shares: dict[str, float] = {}
    for place in places:
        cp = place.charge_point_id
        share = levels[cp]
        if math.isfinite(share):  # no limit and no cap anywhere: inf
            share = math.floor(max(share, 0.0) * 10 + _EPS) / 10
        shares[cp] = share if share >= minimum else 0.0
    if minimum > 0:
        _grant_minimum(places, paths, limits, shares, minimum, connectors, caps)
    return shares


def _fill(
    places: Sequence[ChargerPlace],
    paths: Mapping[str, tuple[str, ...]],
    limits: Mapping[str, tuple[tuple[float, float, float], float]],
    connectors: Mapping[str, int],
    cap: Mapping[str, float],
) -> dict[str, float]:
    """charge_point_id -> level per connector, by progressive filling (max-min fair).

    All chargers rise together; each round finds the level at which the first
    charger reaches its cap or the first node fills, and fixes those chargers
    there. Every round fixes at least one charger.
    """
    members: dict[str, list[ChargerPlace]] = {node: [] for node in limits}
    for place in places:
        for node in paths[place.charge_point_id]:
            if node in members:
                members[node].append(place)
    fixed: dict[str, float] = {}
    rising = {place.charge_point_id for place in places}
    while rising:
        node_levels = {
            node: _node_level(limits[node], chargers, connectors, fixed)
            for node, chargers in members.items()
            if any(c.charge_point_id in rising for c in chargers)
        }
        level = min([*node_levels.values(), *(cap[cp] for cp in rising)])
        capped = {cp for cp in rising if cap[cp] <= level + _EPS}
        full = {
            c.charge_point_id
            for node, node_level in node_levels.items()
            if node_level <= level + _EPS
            for c in members[node]
            if c.charge_point_id in rising
        }
        for cp in capped | full:
            fixed[cp] = max(0.0, min(level, cap[cp]))
        rising -= capped | full
    return fixed


def _node_level(
    limit: tuple[tuple[float, float, float], float],
    chargers: Iterable[ChargerPlace],
    connectors: Mapping[str, int],
    fixed: Mapping[str, float],
) -> float:
    """The level the still-rising chargers of a node can reach with the fixed ones' draw."""
    per_line, total = limit
    used = [0.0] * PHASES
    rising = [0] * PHASES
    for place in chargers:
        count = connectors[place.charge_point_id]
        level = fixed.get(place.charge_point_id)
        for line in charger_lines(place):
            if level is None:
                rising[line] += count
            else:
                used[line] += level * count
    levels = [(per_line[p] - used[p]) / rising[p] for p in range(PHASES) if rising[p]]
    if sum(rising):
        levels.append((total - sum(used)) / sum(rising))
    return min(levels, default=math.inf)


def _grant_minimum(
    places: Sequence[ChargerPlace],
    paths: dict[str, tuple[str, ...]],
    limits: Mapping[str, tuple[tuple[float, float, float], float]],
    shares: dict[str, float],
    minimum: float,
    connectors: Mapping[str, int],
    caps: Mapping[str, float],
) -> None:
    """Give ``minimum`` to chargers left at 0 A, most important first, while it fits."""
    used = {node: [0.0] * (PHASES + 1) for node in limits}

    def add(place: ChargerPlace, amount: float) -> None:
        amount *= connectors[place.charge_point_id]
        for node in paths[place.charge_point_id]:
            if node not in used:
                continue
            for line in charger_lines(place):
                used[node][line] += amount
                used[node][PHASES] += amount

    def fits(place: ChargerPlace, amount: float) -> bool:
        if amount > caps.get(place.charge_point_id, place.max_current_a) + _EPS:
            return False
        amount *= connectors[place.charge_point_id]
        for node in paths[place.charge_point_id]:
            if node not in limits:
                continue
            per_line, total = limits[node]
            lines = charger_lines(place)
            if any(used[node][line] + amount > per_line[line] + _EPS for line in lines):
                return False
            if used[node][PHASES] + amount * len(lines) > total + _EPS:
                return False
        return True

    for place in places:
        add(place, shares[place.charge_point_id])
    waiting = sorted(
        (c for c in places if shares[c.charge_point_id] == 0.0),
        key=lambda c: (-c.priority, c.charge_point_id),
    )
    for place in waiting:
        if fits(place, minimum):
            shares[place.charge_point_id] = minimum
            add(place, minimum)
