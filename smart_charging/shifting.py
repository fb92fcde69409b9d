"""Time-of-use shifting: move a session's charging to the cheapest hours before it leaves (pure).

The price model is a *daily time-of-day tariff* in the site's time zone: a
list of ``(start time of day, price)`` entries, each in force from its start
until the next entry's start, the last one wrapping round midnight to the
first (``[(00:00, 0.10), (07:00, 0.30), (22:00, 0.10)]`` is a night tariff).
That is what an operator reads off an electricity bill; explicit one-off
intervals are what :func:`price_intervals` turns it into, and :func:`shift`
only ever sees those intervals (offsets in seconds from now), so another
price source (a day-ahead market feed) would plug in there.

:func:`shift` plans one session that has a departure time and an amount of
energy still wanted::

    power    P = I_alloc * phases * 230 V          (W, at today's allocation)
    needed   n = ceil(E_wanted * 3600 / P)          (s of charging at full allocation)
    horizon  H = departure - now                    (s)

If ``n > H`` the deadline cannot be met: charge at full allocation now
(``feasible`` is False, and the service says so in its plan event).
Otherwise the horizon is cut into slots at every price boundary, the slots
are taken cheapest first (earlier first among equal prices, as a margin
against a plan that changes later) and each is charged at full allocation
until ``n`` seconds are covered; the last slot taken is used from its start.
Charging at 0 or at the full allocation only means no period is ever
between 0 and the minimum current, and none above the allocation the site
plan gives now. The cost is optimal for on/off charging at that current:
any other way, charging at once included, uses ``n`` seconds of the same
horizon, and the greedy choice takes the ``n`` cheapest ones.

The site's allocation can change at any moment; the real-time loop re-plans
on every change and sends a fresh schedule, so the later periods being
capped at today's allocation keeps the site limit safe.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from smart_charging.allocation import NOMINAL_VOLTAGE


@dataclass(frozen=True, slots=True)
class TariffEntry:
    """From ``start`` (local time of day) until the next entry's start: ``price`` per kWh."""

    start: time
    price: float


@dataclass(frozen=True, slots=True)
class PriceInterval:
    """``price`` from ``start`` to ``end``, in seconds from now."""

    start: float
    end: float
    price: float


@dataclass(frozen=True, slots=True)
class ShiftPlan:
    """A schedule: ``(start offset s, limit A)`` periods, the first at 0, each until the next."""

    periods: tuple[tuple[int, float], ...]
    feasible: bool  # False: the deadline cannot be met, so it charges at full allocation now


def price_intervals(
    tariff: Sequence[TariffEntry], zone: str, now: datetime, until: datetime
) -> list[PriceInterval]:
    """The daily ``tariff`` in time zone ``zone`` as intervals covering ``now`` to ``until``."""
    if not tariff or until <= now:
        return []
    entries = sorted(tariff, key=lambda e: e.start)
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date() - timedelta(days=1)  # the entry in force at now began then
    last_day = until.astimezone(tz).date()
    starts: list[tuple[datetime, float]] = []
    while day <= last_day:
        for e in entries:
            # Local wall-clock times (a DST gap or overlap shifts an entry by an hour at most).
            starts.append((datetime.combine(day, e.start, tzinfo=tz), e.price))
        day += timedelta(days=1)
    out = []
    for (at, price), (next_at, _) in zip(starts, [*starts[1:], (until, 0.0)], strict=True):
        begin, end = max(at, now), min(next_at, until)
        if end > begin:
            out.append(
                PriceInterval((begin - now).total_seconds(), (end - now).total_seconds(), price)
            )
    return out


def shift(
    horizon_s: float,
    energy_wh: float,
    allocation_a: float,
    phases: int,
    min_current_a: float,
    prices: Sequence[PriceInterval],
    voltage: float = NOMINAL_VOLTAGE,
) -> ShiftPlan | None:
    """Plan a session (see the module docstring); None when there is nothing to shift.

    Nothing to shift: no energy still wanted, no allocation to charge with
    (paused, or below the minimum), or no prices. Time not covered by any
    price interval counts as dearer than every priced hour.
    """
    if energy_wh <= 0 or allocation_a <= 0 or allocation_a < min_current_a or not prices:
        return None
    horizon = math.floor(horizon_s)
    needed = math.ceil(energy_wh * 3600.0 / (allocation_a * phases * voltage))
    if needed >= horizon:
        return ShiftPlan(((0, allocation_a),), feasible=needed <= horizon)
    slots = _slots(horizon, prices)
    chosen: list[tuple[int, int]] = []
    left = needed
    for start, end, _ in sorted(slots, key=lambda s: (s[2], s[0])):
        if left <= 0:
            break
        take = min(end - start, left)
        chosen.append((start, start + take))
        left -= take
    periods: list[tuple[int, float]] = []
    for start, end in sorted(chosen):
        if periods and periods[-1] == (start, 0.0):
            periods.pop()  # the previous slot ended where this one starts: one period
        elif not periods and start > 0:
            periods.append((0, 0.0))
        if not periods or periods[-1][1] != allocation_a:
            periods.append((start, allocation_a))
        periods.append((end, 0.0))
    return ShiftPlan(tuple(periods), feasible=True)


def _slots(horizon: int, prices: Sequence[PriceInterval]) -> list[tuple[int, int, float]]:
    """``[0, horizon)`` cut at every price boundary, as (start, end, price), in whole seconds."""
    bounds = {0, horizon}
    for p in prices:
        for edge in (p.start, p.end):
            if 0 < edge < horizon:
                bounds.add(round(edge))
    cuts = sorted(bounds)
    out = []
    for start, end in itertools.pairwise(cuts):
        middle = (start + end) / 2
        price = next((p.price for p in prices if p.start <= middle < p.end), math.inf)
        out.append((start, end, price))
    return out


def cost(
    periods: Sequence[tuple[int, float]], horizon_s: float, prices: Sequence[PriceInterval]
) -> float:
    """Ampere-seconds charged times price over ``[0, horizon_s)`` (to compare plans in tests)."""
    total = 0.0
    ends = [start for start, _ in periods[1:]] + [math.floor(horizon_s)]
    for (start, limit), end in zip(periods, ends, strict=True):
        for s, e, price in _slots(math.floor(horizon_s), prices):
            overlap = min(end, e) - max(start, s)
            if overlap > 0 and limit > 0:
                total += overlap * limit * price
    return total


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """A site's daily tariff: entries (local time of day, price) in IANA time zone ``zone``."""

    zone: str
    entries: tuple[TariffEntry, ...]


def site_intervals(
    prices: PriceSchedule | None, now: datetime, departures: Sequence[datetime]
) -> list[PriceInterval] | None:
    """The site's prices from ``now`` to its last departure, once per plan (None: no shifting)."""
    if prices is None or not departures:
        return None
    return price_intervals(prices.entries, prices.zone, now, max(departures))


def session_plan(
    intervals: Sequence[PriceInterval] | None,
    now: datetime,
    departure: datetime | None,
    energy_wanted_wh: float | None,
    energy_delivered_wh: float | None,
    allocation_a: float,
    phases: int,
    min_current_a: float,
) -> ShiftPlan | None:
    """The shifted schedule of one session, or None when it just charges at its allocation.

    Shifted: the site has prices (``intervals`` from :func:`site_intervals`, covering
    at least until ``departure``) and the session a departure time and energy wanted of
    which some is still missing (wanted minus what its meter shows delivered).
    """
    if intervals is None or departure is None or energy_wanted_wh is None:
        return None
    left = energy_wanted_wh - (energy_delivered_wh or 0.0)
    horizon = (departure - now).total_seconds()
    if horizon <= 0:
        return None if left <= 0 else ShiftPlan(((0, allocation_a),), feasible=False)
    return shift(horizon, left, allocation_a, phases, min_current_a, intervals)


def same_schedule(
    a: Sequence[tuple[float, float]] | None,
    b: Sequence[tuple[float, float]] | None,
    tolerance_s: float,
) -> bool:
    """Whether two schedules (absolute start epoch s, limit) differ by less than a resend is worth.

    The first period of each starts at its plan's "now", so only later starts are compared.
    """
    if a is None or b is None:
        return a is b
    if len(a) != len(b) or any(x[1] != y[1] for x, y in zip(a, b, strict=True)):
        return False
    return all(abs(x[0] - y[0]) <= tolerance_s for x, y in zip(a[1:], b[1:], strict=True))
