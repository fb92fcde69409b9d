"""A site as stored, and its translation into the allocator's tree (pure, no I/O).

Node ids of the tree: ``site``, ``group:<id>``, ``charger:<charge_point_id>``
and ``evse:<charge_point_id>:<evse_id>``; a session's id is
``<charge_point_id>/<evse_id>`` (one session per EVSE at a time).

Sessions the CSMS cannot currently steer (their charger is offline, or did
not accept its last profile) are *uncontrolled*: they are not allocated but
their assumed draw (their last known maximum) is taken off the limit of every
node above them, on the lines they load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from smart_charging.allocation import NOMINAL_VOLTAGE, PHASES, Node, Session
from smart_charging.policies import DEFAULT_POLICY, fills_gaps, order_sessions
from smart_charging.shifting import PriceSchedule


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site_id: str
    name: str | None = None
    phase_limit_a: float | None = None  # per line
    power_limit_kw: float | None = None  # over all lines
    dr_limit_a: float | None = None  # demand-response cut, per line
    dr_until: datetime | None = None
    min_current_a: float = 6.0
    fallback_current_a: float | None = None  # None: the failsafe share (failsafe.py)
    arrival_reserve_a: float = 0.0  # A per line held back from sessions for arrivals
    allocation_policy: str = DEFAULT_POLICY  # order and share in a class (policies.py)

    def phase_limit_at(self, now: datetime) -> float | None:
        """The per-line limit in force at ``now``: the lower of the limit and a live cut."""
        limits = [x for x in (self.phase_limit_a, self.dr_limit_at(now)) if x is not None]
        return min(limits) if limits else None

    def dr_limit_at(self, now: datetime) -> float | None:
        if self.dr_limit_a is None or (self.dr_until is not None and self.dr_until <= now):
            return None
        return self.dr_limit_a


@dataclass(frozen=True, slots=True)
class GroupConfig:
    group_id: str
    parent_id: str | None = None
    name: str | None = None
    phase_limit_a: float | None = None
    power_limit_kw: float | None = None


@dataclass(frozen=True, slots=True)
class ChargerPlace:
    """Where a charger hangs in a site and what its hardware allows."""

    charge_point_id: str
    group_id: str | None = None
    max_current_a: float = 32.0
    connector_max_current_a: float | None = None
    phases: int = 3
    priority: int = 0
    connectors: int = 1  # EVSEs a session can start on (its TxDefaultProfile applies to each)


@dataclass(frozen=True, slots=True)
class SiteTree:
    site: SiteConfig
    groups: tuple[GroupConfig, ...] = ()
    chargers: tuple[ChargerPlace, ...] = ()
    prices: PriceSchedule | None = None  # time of use: None = no shifting


@dataclass(frozen=True, slots=True)
class LiveSession:
    """An active session as the real-time loop sees it."""

    charge_point_id: str
    evse_id: int
    transaction_id: str
    rank: float  # start time (epoch seconds): earlier sessions are admitted first
    phases: int = 3  # lines the EV loads (1 when its meter values show one line)
    priority: int | None = None  # None = the charger's priority
    observed_max: float | None = None  # A it really draws, when clearly below its offer
    uncontrolled_draw: float | None = None  # set = not steerable, assume it draws this
    urgency: int = 0  # its order key under the site's policy (policies.order_key)
    idle: bool = False  # full or idle EV: lowest class, offered its minimum only
    probing: bool = False  # an idle EV offered its minimum again in its own class
    plan_cap_a: float | None = None  # the site's time-of-use plan allows this now (0: off)

    @property
    def key(self) -> str:
        return session_key(self.charge_point_id, self.evse_id)


def session_key(charge_point_id: str, evse_id: int) -> str:
    return f"{charge_point_id}/{evse_id}"


def charger_node(charge_point_id: str) -> str:
    return f"charger:{charge_point_id}"


def evse_node(charge_point_id: str, evse_id: int) -> str:
    return f"evse:{charge_point_id}:{evse_id}"


def _limits(phase_limit_a: float | None) -> tuple[float, float, float]:
    value = math.inf if phase_limit_a is None else phase_limit_a
    return (value, value, value)


def _total(power_limit_kw: float | None) -> float:
    return math.inf if power_limit_kw is None else power_limit_kw * 1000.0 / NOMINAL_VOLTAGE


@dataclass(frozen=True, slots=True)
class Problem:
    """The allocator's input for one site, plus what was set aside for uncontrolled load."""

    nodes: tuple[Node, ...]
    sessions: tuple[Session, ...]
    reserved: dict[str, float]  # session key -> A assumed drawn by an uncontrolled session
    fill_gaps: bool = False  # the site's policy fills gaps left under a minimum (policies.py)


def _capped(hardware_a: float, s: LiveSession) -> float:
    """A session the time-of-use plan switched off has a maximum of 0: it holds nothing."""
    return hardware_a if s.plan_cap_a is None else min(hardware_a, s.plan_cap_a)


def build_problem(
    tree: SiteTree,
    live: Sequence[LiveSession],
    now: datetime,
    fixed_defaults: Mapping[str, float] | None = None,
) -> Problem:
    """The tree of limits and the sessions to allocate for one site at ``now``.

    ``fixed_defaults``: charger -> A per line its free connectors may draw under a
    TxDefaultProfile the planner cannot lower now (charger offline, or it refused
    one): taken off every limit above it, like an uncontrolled session.
    """
    site = tree.site
    base: dict[str, tuple[str | None, tuple[float, float, float], float]] = {
        "site": (None, _limits(site.phase_limit_at(now)), _total(site.power_limit_kw))
    }
    for g in tree.groups:
        parent = f"group:{g.parent_id}" if g.parent_id else "site"
        base[f"group:{g.group_id}"] = (parent, _limits(g.phase_limit_a), _total(g.power_limit_kw))
    places = {c.charge_point_id: c for c in tree.chargers}
    for c in tree.chargers:
        parent = f"group:{c.group_id}" if c.group_id and f"group:{c.group_id}" in base else "site"
        charger_limits = _limits(c.max_current_a)
        if c.phases == 1:
            charger_limits = (c.max_current_a, 0.0, 0.0)  # a single-phase charger is on L1
        base[charger_node(c.charge_point_id)] = (parent, charger_limits, math.inf)
    taken: dict[str, list[float]] = {node_id: [0.0] * (PHASES + 1) for node_id in base}
    for cp, amount in sorted((fixed_defaults or {}).items()):
        if cp not in places or amount <= 0:
            continue
        charger_lines = (0, 1, 2) if places[cp].phases == 3 else (0,)
        at: str | None = charger_node(cp)
        while at is not None:
            for p in charger_lines:
                taken[at][p] += amount
            taken[at][PHASES] += amount * len(charger_lines)
            at = base[at][0]
    sessions: list[Session] = []
    reserved: dict[str, float] = {}
    for s in sorted(live, key=lambda s: s.key):
        place = places.get(s.charge_point_id)
        if place is None:
            continue
        node = evse_node(s.charge_point_id, s.evse_id)
        base.setdefault(
            node,
            (
                charger_node(s.charge_point_id),
                _limits(place.connector_max_current_a),
                math.inf,
            ),
        )
        taken.setdefault(node, [0.0] * (PHASES + 1))
        lines: tuple[int, ...] = (0, 1, 2) if s.phases == 3 and place.phases == 3 else (0,)
        if s.uncontrolled_draw is not None:
            reserved[s.key] = s.uncontrolled_draw
            current: str | None = node
            while current is not None:
                for p in lines:
                    taken[current][p] += s.uncontrolled_draw
                taken[current][PHASES] += s.uncontrolled_draw * len(lines)
                current = base[current][0]
            continue
        sessions.append(
            Session(
                id=s.key,
                node=node,
                phases=lines,
                max_current=_capped(place.connector_max_current_a or place.max_current_a, s),
                min_current=site.min_current_a,
                priority=place.priority if s.priority is None else s.priority,
                rank=s.rank,
                # A probe offers the minimum only: the cap falls to it.
                observed_max=0.0 if s.probing else s.observed_max,
                urgency=s.urgency,
                idle=s.idle,
            )
        )
    nodes = []
    for node_id, (parent_id, lines3, total) in sorted(base.items()):
        t = taken[node_id]
        limits = (
            max(0.0, lines3[0] - t[0]),
            max(0.0, lines3[1] - t[1]),
            max(0.0, lines3[2] - t[2]),
        )
        nodes.append(Node(node_id, parent_id, limits, max(0.0, total - t[PHASES])))
    ordered = order_sessions(site.allocation_policy, sessions, now)
    return Problem(tuple(nodes), tuple(ordered), reserved, fills_gaps(site.allocation_policy))
