"""The site-wide time-of-use plan in the running load manager: when to solve, what it caps.

A site with a daily tariff (``PUT /sites/{id}/prices``, :mod:`smart_charging.shifting`)
whose sessions say when they leave and how much energy they want gets ONE plan
for all those sessions (:func:`smart_charging.site_plan.site_plan`: as much
energy as any schedule can deliver by the departures, then the cheapest way).
Its grid: the rest of the current quarter hour, then quarter hours (so they
line up with the tariff's changes) until the last departure, at most
``HORIZON_H``. Per period the site's limit in kW is the lower of its power limit
and three lines at its per-line limit (a demand-response cut counted until it
ends), less what uncontrolled sessions are assumed to draw. Sessions without a departure
or an energy wanted are not in the plan: they charge at their allocation as before.

The plan also counts the sessions still to come (:func:`expected_sessions`):
every session of the site's last ``HISTORY_WEEKS`` weeks, moved on by whole
weeks to its next occurrence after the current quarter hour, wanting its energy
divided by the number of weeks, between its arrival and departure times. So
energy of the EVs present is not moved to cheap hours that the EVs arriving
later will need: on a congested site they charge now. (These expected sessions
only shape the plan; nothing is capped or sent for them.)

Only the plan's *current* period is used: each planned session's power in it,
turned into ampere per line, caps what the allocator may give it (raised to the
minimum current when the plan gives it a little: the LP knows no 6 A minimum; a
pilot signal below it means "stop"). A session the plan gives nothing now is
allocated 0 A with a maximum of 0 A, so it holds no capacity the others could use.
The allocator still enforces every limit of the tree (lines, groups, chargers),
which the plan's one-number-per-period site limit does not see; the plan never
lifts anything above what the allocator allows.

The plan is solved off the event loop (a worker thread, ``SOLVE_TIMEOUT_S`` and
the same HiGHS time limit) and kept per site while its input stays the same
(sessions, their departure and energy wanted, the site's limits, the prices,
the grid); a re-plan for another reason (a meter value, the periodic plan)
reuses it. A new quarter hour re-solves it with what the meters show delivered
(a timer wakes the site's worker then). If the solve fails or times out the site
is planned without time of use - every session charges at its allocation at
once, the safe side for the deadlines - and ``smart_charging.tou_plan_failed``
is logged; the same input is not retried before the next quarter hour.

Nothing of the plan is stored: every input is in Postgres (sessions and their
preferences, meter energy, site limits and prices), so a planner that takes a
site over after a failover or a restart simply solves it again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from csms.clock import SYSTEM_CLOCK, Clock
from smart_charging import store
from smart_charging.allocation import NOMINAL_VOLTAGE
from smart_charging.model import SiteTree
from smart_charging.shifting import price_intervals
from smart_charging.site_plan import PlanSession, SitePlan, site_plan

log = structlog.get_logger(__name__)

PERIOD_S = 900  # quarter hours: what tariffs and day-ahead prices are quoted in
MIN_FIRST_S = 60  # a first period shorter than this is merged into the next
HORIZON_H = 48  # no plan looks further ahead (later departures count from there)
HISTORY_WEEKS = 4  # the expected arrivals: the same hours of the last four weeks
HISTORY_REFRESH = timedelta(hours=1)  # the history is read again after this
SOLVE_TIMEOUT_S = 5.0  # then the site is planned without time of use
OFF_KW = 0.01  # less than this in the current period: switched off by the plan
MISSED_WH = 10.0  # planned this much less than wanted: the deadline cannot be met


@dataclass(frozen=True, slots=True)
class Need:
    """A session that says when it leaves and how much energy it still wants."""

    key: str
    phases: int
    max_a: float  # A per line its hardware allows
    departure: datetime
    energy_wh: float  # still wanted: wanted less delivered
    wanted_wh: float = 0.0  # what it asked for in all (a new figure re-solves the plan)


@dataclass(frozen=True, slots=True)
class PastSession:
    """An ended session of the site: the history the expected arrivals are drawn from."""

    started_at: datetime
    ended_at: datetime
    energy_wh: float  # what it took
    max_kw: float  # what its charger allows (hardware maximum, its phases, 230 V)


def past_sessions(rows: Sequence[Mapping[str, Any]], tree: SiteTree) -> list[PastSession]:
    """Rows of :func:`smart_charging.store.ended_sessions` of chargers still on the site."""
    places = {c.charge_point_id: c for c in tree.chargers}
    out = []
    for r in rows:
        place = places.get(r["charge_point_id"])
        if place is None:
            continue
        amps = place.connector_max_current_a or place.max_current_a
        max_kw = amps * place.phases * NOMINAL_VOLTAGE / 1000.0
        out.append(PastSession(r["started_at"], r["ended_at"], float(r["energy_wh"]), max_kw))
    return out


def expected_sessions(
    history: Sequence[PastSession],
    starts: Sequence[datetime],
    end: datetime,
    weeks: int,
) -> list[PlanSession]:
    """The sessions still to come in the grid ``starts``..``end`` (see the module docstring).

    Each past session, moved by whole weeks to its first occurrence from the second
    period on, may charge from the first period that starts at or after its arrival
    until the last one that starts before its departure.
    """
    if len(starts) < 2 or weeks <= 0:
        return []
    out = []
    week = timedelta(days=7)
    for index, past in enumerate(sorted(history, key=lambda p: (p.started_at, p.ended_at))):
        if past.ended_at <= past.started_at or past.energy_wh <= 0:
            continue
        shift = math.ceil((starts[1] - past.started_at) / week)
        arrival = past.started_at + max(1, shift) * week
        departure = arrival + (past.ended_at - past.started_at)
        first = sum(1 for s in starts if s < arrival)
        last = sum(1 for s in starts if s < departure)
        if arrival >= end or first >= last:
            continue
        energy_kwh = past.energy_wh / 1000.0 / weeks
        out.append(PlanSession(f"~{index}", past.max_kw, energy_kwh, last, 1.0, first))
    return out


@dataclass(frozen=True, slots=True)
class PlanInput:
    """One site plan's problem, and what identifies it (unchanged input, same plan)."""

    starts: tuple[datetime, ...]  # of each period; the last one ends at ``end``
    end: datetime
    limit_kw: tuple[float, ...]
    prices: tuple[float, ...]
    sessions: tuple[PlanSession, ...]
    phases: Mapping[str, int]
    expected: tuple[PlanSession, ...] = ()  # still to come (history): they shape the plan

    @property
    def hours(self) -> list[float]:
        ends = [*self.starts[1:], self.end]
        return [(b - a).total_seconds() / 3600.0 for a, b in zip(self.starts, ends, strict=True)]

    def identity(self, needs: Sequence[Need]) -> tuple[object, ...]:
        """Everything but the energy delivered (read again at each quarter hour): the plan
        is re-solved when it changes."""
        return (
            self.starts[1:] if len(self.starts) > 1 else self.end,
            self.limit_kw,
            self.prices,
            tuple((n.key, n.phases, n.max_a, n.departure, n.wanted_wh) for n in needs),
            self.expected,
        )


def grid(now: datetime, until: datetime) -> tuple[tuple[datetime, ...], datetime]:
    """Period starts from ``now`` (the first up to the next quarter hour) and the end."""
    end = min(until, now + timedelta(hours=HORIZON_H))
    epoch = now.timestamp()
    boundary = math.floor(epoch / PERIOD_S) * PERIOD_S + PERIOD_S
    if boundary - epoch < MIN_FIRST_S:
        boundary += PERIOD_S
    starts = [now]
    at = now + timedelta(seconds=boundary - epoch)
    while at < end:
        starts.append(at)
        at += timedelta(seconds=PERIOD_S)
    return tuple(starts), max(end, now + timedelta(seconds=1))


def site_limit_kw(tree: SiteTree, at: datetime, reserved_kw: float) -> float:
    """The site's limit at ``at`` in kW over all lines, less uncontrolled load."""
    site = tree.site
    limits = []
    phase = site.phase_limit_at(at)
    if phase is not None:
        limits.append(3 * phase * NOMINAL_VOLTAGE / 1000.0)
    if site.power_limit_kw is not None:
        limits.append(site.power_limit_kw)
    if not limits:
        return math.inf
    return max(0.0, min(limits) - reserved_kw)


def plan_input(
    tree: SiteTree,
    needs: Sequence[Need],
    now: datetime,
    reserved_kw: float,
    history: Sequence[PastSession] = (),
) -> PlanInput | None:
    """The site plan's problem at ``now``, or None when there is nothing to plan."""
    if tree.prices is None:
        return None
    needs = [n for n in needs if n.energy_wh > 0 and n.departure > now]
    if not needs:
        return None
    starts, end = grid(now, max(n.departure for n in needs))
    intervals = price_intervals(tree.prices.entries, tree.prices.zone, now, end)
    ends = [*starts[1:], end]
    prices = []
    for a, b in zip(starts, ends, strict=True):
        lo, hi = (a - now).total_seconds(), (b - now).total_seconds()
        paid = sum(
            p.price * (min(hi, p.end) - max(lo, p.start))
            for p in intervals
            if p.end > lo and p.start < hi
        )
        prices.append(paid / (hi - lo))
    sessions = []
    for n in needs:
        # The periods it may charge in: those that start before it leaves, the last cut short.
        periods = sum(1 for s in starts if s < n.departure)
        last = periods - 1
        span = (ends[last] - starts[last]).total_seconds()
        fraction = min(1.0, (n.departure - starts[last]).total_seconds() / span)
        max_kw = n.max_a * n.phases * NOMINAL_VOLTAGE / 1000.0
        sessions.append(PlanSession(n.key, max_kw, n.energy_wh / 1000.0, periods, fraction))
    return PlanInput(
        starts,
        end,
        tuple(site_limit_kw(tree, s, reserved_kw) for s in starts),
        tuple(prices),
        tuple(sessions),
        {n.key: n.phases for n in needs},
        tuple(expected_sessions(history, starts, end, HISTORY_WEEKS)),
    )


@dataclass(frozen=True, slots=True)
class Allowances:
    """What the plan lets each planned session draw now, and which deadlines it cannot meet."""

    caps_a: Mapping[str, float]  # A per line in the current period (0: switched off)
    feasible: Mapping[str, bool]  # every planned session: False = less than it wants
    until: datetime  # the current period ends: re-solve then


def allowances(
    plan: SitePlan, problem: PlanInput, min_current_a: float, needs: Sequence[Need]
) -> Allowances:
    """The current period of ``plan`` as caps per session (see the module docstring)."""
    hours = problem.hours
    caps: dict[str, float] = {}
    feasible: dict[str, bool] = {}
    wanted = {n.key: n.energy_wh for n in needs}
    for s in problem.sessions:
        powers = plan.power_kw.get(s.id, ())
        kw = powers[0] if powers else 0.0
        if s.periods == 1 and s.last_fraction > 0:
            kw /= s.last_fraction  # it leaves within this period: the energy in its part of it
        phases = problem.phases[s.id]
        if kw < OFF_KW:
            caps[s.id] = 0.0
        else:
            amps = kw * 1000.0 / (phases * NOMINAL_VOLTAGE)
            caps[s.id] = max(min_current_a, math.ceil(amps * 10 - 1e-6) / 10)
        planned_wh = 1000.0 * sum(p * h for p, h in zip(powers, hours, strict=False))
        feasible[s.id] = planned_wh >= wanted.get(s.id, 0.0) - MISSED_WH
    for n in needs:  # past its departure and still wanting energy: missed (not capped)
        if n.key not in feasible and n.energy_wh > MISSED_WH:
            feasible[n.key] = False
    until = problem.starts[1] if len(problem.starts) > 1 else problem.end
    return Allowances(caps, feasible, until)


@dataclass
class _Cached:
    identity: tuple[object, ...]
    result: Allowances | None  # None: the solve failed; planned without time of use
    timer: asyncio.Task[None] | None = field(default=None)


class SitePlans:
    """The load manager's site plans, one per site with prices (see the module docstring)."""

    def __init__(self, wake: Callable[[str, str], None], clock: Clock = SYSTEM_CLOCK) -> None:
        self._wake = wake  # (site_id, reason): re-plan the site (the service's request_replan)
        self._clock = clock  # the period boundaries are on the service's clock
        self._cached: dict[str, _Cached] = {}
        self._history: dict[str, tuple[datetime, list[PastSession]]] = {}

    async def history(
        self, tree: SiteTree, needs: Sequence[Need], now: datetime, pool: asyncpg.Pool
    ) -> list[PastSession]:
        """The site's sessions of the last ``HISTORY_WEEKS`` weeks (read once an hour, and
        only for a site with prices and sessions to plan)."""
        site_id = tree.site.site_id
        if tree.prices is None or not needs:
            return []
        known = self._history.get(site_id)
        if known is not None and now - known[0] < HISTORY_REFRESH:
            return known[1]
        async with pool.acquire() as conn:
            rows = await store.ended_sessions(conn, site_id, now - timedelta(weeks=HISTORY_WEEKS))
        past = past_sessions([dict(r) for r in rows], tree)
        self._history[site_id] = (now, past)
        return past

    async def current(
        self,
        tree: SiteTree,
        needs: Sequence[Need],
        now: datetime,
        reserved_kw: float,
        history: Sequence[PastSession] = (),
    ) -> Allowances | None:
        """The caps of the site's plan for now, solving it if its input changed."""
        site_id = tree.site.site_id
        problem = plan_input(tree, needs, now, reserved_kw, history)
        if problem is None:
            self._drop(site_id)
            return None
        identity = problem.identity(needs)
        cached = self._cached.get(site_id)
        if cached is not None and cached.identity == identity:
            return cached.result
        self._drop(site_id)
        result: Allowances | None = None
        try:
            plan = await asyncio.wait_for(
                asyncio.to_thread(
                    site_plan,
                    problem.sessions + problem.expected,
                    problem.limit_kw,
                    problem.prices,
                    problem.hours,
                    SOLVE_TIMEOUT_S,
                ),
                SOLVE_TIMEOUT_S + 1.0,
            )
            result = allowances(plan, problem, tree.site.min_current_a, needs)
        except (TimeoutError, ValueError) as error:
            log.warning(
                "smart_charging.tou_plan_failed",
                site_id=site_id,
                sessions=len(problem.sessions),
                periods=len(problem.starts),
                error=str(error) or type(error).__name__,
            )
        until = problem.starts[1] if len(problem.starts) > 1 else problem.end
        delay = max(0.0, (until - now).total_seconds()) + 1.0
        timer = asyncio.create_task(self._wake_after(delay, site_id))
        self._cached[site_id] = _Cached(identity, result, timer)
        return result

    async def _wake_after(self, delay: float, site_id: str) -> None:
        """Re-plan the site when the current period ends (on the service's clock)."""
        await self._clock.sleep(delay)
        self._wake(site_id, "tou_period")

    def close(self) -> None:
        """Drop every plan and its timer (the service stops)."""
        for site_id in list(self._cached):
            self.forget(site_id)

    def forget(self, site_id: str) -> None:
        """Drop all that is kept of the site (this node no longer plans it)."""
        self._history.pop(site_id, None)
        self._drop(site_id)

    def _drop(self, site_id: str) -> None:
        """Drop the site's plan and its timer (no prices or deadlines, or a new input)."""
        cached = self._cached.pop(site_id, None)
        if cached is not None and cached.timer is not None:
            cached.timer.cancel()
