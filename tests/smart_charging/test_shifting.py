"""Time-of-use shifting (pure): hand-worked cases and hypothesis properties."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from smart_charging.shifting import (
    PriceInterval,
    PriceSchedule,
    TariffEntry,
    cost,
    price_intervals,
    session_plan,
    shift,
    site_intervals,
)

HOUR = 3600
# 16 A on 3 lines at 230 V: 11,040 W, so 11,040 Wh is exactly one hour.
ONE_HOUR_AT_16A = 16 * 3 * 230.0


def _night_tariff() -> list[PriceInterval]:
    """Now is 18:00; dear until 22:00, cheap 22:00-06:00, dear again after."""
    return [
        PriceInterval(0, 4 * HOUR, 0.30),
        PriceInterval(4 * HOUR, 12 * HOUR, 0.10),
        PriceInterval(12 * HOUR, 24 * HOUR, 0.30),
    ]


def test_two_hours_wanted_overnight_are_charged_at_the_start_of_the_cheap_night() -> None:
    plan = shift(14 * HOUR, 2 * ONE_HOUR_AT_16A, 16.0, 3, 6.0, _night_tariff())
    assert plan is not None and plan.feasible
    assert plan.periods == ((0, 0.0), (4 * HOUR, 16.0), (6 * HOUR, 0.0))


def test_more_than_the_cheap_hours_hold_spills_into_the_earliest_dear_hours() -> None:
    # 10 h wanted, 8 cheap hours (22:00-06:00), departure at 08:00 (14 h from now).
    plan = shift(14 * HOUR, 10 * ONE_HOUR_AT_16A, 16.0, 3, 6.0, _night_tariff())
    assert plan is not None and plan.feasible
    assert plan.periods == ((0, 16.0), (2 * HOUR, 0.0), (4 * HOUR, 16.0), (12 * HOUR, 0.0))


def test_a_deadline_that_cannot_be_met_charges_at_full_allocation_now() -> None:
    plan = shift(3 * HOUR, 4 * ONE_HOUR_AT_16A, 16.0, 3, 6.0, _night_tariff())
    assert plan is not None and not plan.feasible
    assert plan.periods == ((0, 16.0),)


def test_a_single_phase_ev_needs_three_times_as_long() -> None:
    plan = shift(14 * HOUR, ONE_HOUR_AT_16A, 16.0, 1, 6.0, _night_tariff())
    assert plan is not None
    assert plan.periods == ((0, 0.0), (4 * HOUR, 16.0), (7 * HOUR, 0.0))


def test_nothing_to_shift_without_energy_allocation_or_prices() -> None:
    assert shift(HOUR, 0.0, 16.0, 3, 6.0, _night_tariff()) is None
    assert shift(HOUR, 1000.0, 0.0, 3, 6.0, _night_tariff()) is None
    assert shift(HOUR, 1000.0, 16.0, 3, 6.0, []) is None


def test_a_daily_tariff_becomes_intervals_in_the_sites_time_zone() -> None:
    tariff = [TariffEntry(time(7), 0.30), TariffEntry(time(22), 0.10)]
    # 20:00 UTC is 21:00 in Paris (winter): one hour dear, then cheap until 07:00 local.
    now = datetime(2026, 1, 15, 20, 0, tzinfo=UTC)
    until = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)
    intervals = price_intervals(tariff, "Europe/Paris", now, until)
    assert intervals == [
        PriceInterval(0, HOUR, 0.30),
        PriceInterval(HOUR, 10 * HOUR, 0.10),
        PriceInterval(10 * HOUR, 12 * HOUR, 0.30),
    ]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[float, float, float, int, list[PriceInterval]]:
    horizon = draw(st.integers(min_value=1, max_value=48 * HOUR))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, horizon - 1)), max_size=8)) - {horizon})
    bounds = [0, *cuts, horizon]
    prices = [
        PriceInterval(a, b, draw(st.sampled_from([0.05, 0.10, 0.20, 0.30, 0.50])))
        for a, b in itertools.pairwise(bounds)
    ]
    allocation = draw(st.sampled_from([6.0, 8.0, 10.6, 16.0, 32.0]))
    phases = draw(st.sampled_from([1, 3]))
    energy = draw(st.floats(min_value=1.0, max_value=150_000.0))
    return float(horizon), energy, allocation, phases, prices


def _charged_seconds(periods: tuple[tuple[int, float], ...], horizon: float) -> int:
    ends = [start for start, _ in periods[1:]] + [math.floor(horizon)]
    return sum(end - start for (start, limit), end in zip(periods, ends, strict=True) if limit > 0)


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_properties_of_every_plan(
    case: tuple[float, float, float, int, list[PriceInterval]],
) -> None:
    horizon, energy, allocation, phases, prices = case
    plan = shift(horizon, energy, allocation, phases, 6.0, prices)
    assert plan is not None
    starts = [start for start, _ in plan.periods]
    assert starts[0] == 0 and starts == sorted(set(starts))
    # Never above the allocation, never between 0 and the minimum current.
    assert all(limit in (0.0, allocation) for _, limit in plan.periods)
    needed = math.ceil(energy * 3600 / (allocation * phases * 230.0))
    if needed <= horizon:
        assert plan.feasible
        # Energy covered before the departure.
        assert _charged_seconds(plan.periods, horizon) * allocation * phases * 230 >= energy * 3600
        # No dearer than charging at once for the same time.
        immediate = ((0, allocation), (needed, 0.0)) if needed < horizon else ((0, allocation),)
        assert cost(plan.periods, horizon, prices) <= cost(immediate, horizon, prices) + 1e-6
    else:
        assert not plan.feasible and plan.periods == ((0, allocation),)


def test_a_sessions_plan_counts_what_its_meter_delivered_and_its_departure() -> None:
    now = datetime(2026, 1, 15, 18, 0, tzinfo=UTC)
    prices = PriceSchedule("UTC", (TariffEntry(time(6), 0.30), TariffEntry(time(22), 0.10)))
    departure = now + timedelta(hours=14)
    intervals = site_intervals(prices, now, [departure])
    # 3 h wanted, 1 h already delivered: 2 h from 22:00.
    plan = session_plan(
        intervals, now, departure, 3 * ONE_HOUR_AT_16A, ONE_HOUR_AT_16A, 16.0, 3, 6.0
    )
    assert plan is not None and plan.periods == ((0, 0.0), (4 * HOUR, 16.0), (6 * HOUR, 0.0))
    # Everything delivered: nothing to shift, it charges at its allocation as usual.
    done = session_plan(intervals, now, departure, ONE_HOUR_AT_16A, ONE_HOUR_AT_16A, 16, 3, 6)
    assert done is None
    # Departure passed with energy still missing: full allocation now, deadline missed.
    late = session_plan(intervals, departure, now, ONE_HOUR_AT_16A, 0.0, 16.0, 3, 6.0)
    assert late is not None and not late.feasible and late.periods == ((0, 16.0),)
    # No prices or no departure: no shifting.
    assert site_intervals(None, now, [departure]) is None
    assert session_plan(intervals, now, None, ONE_HOUR_AT_16A, 0.0, 16.0, 3, 6.0) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45])), min_size=1),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=3 * 24 * HOUR),
)
def test_a_daily_tariff_covers_the_whole_horizon_without_gaps(
    starts: list[tuple[int, int]], zone: str, now: datetime, horizon: int
) -> None:
    tariff = [TariffEntry(time(h, m), float(i)) for i, (h, m) in enumerate(set(starts))]
    intervals = price_intervals(tariff, zone, now, now + timedelta(seconds=horizon))
    assert intervals[0].start == 0 and intervals[-1].end == horizon
    assert all(a.end == b.start for a, b in itertools.pairwise(intervals))
    assert all(i.end > i.start for i in intervals)
