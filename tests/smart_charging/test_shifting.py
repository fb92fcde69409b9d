"""A site's daily tariff as price intervals (pure): hand-worked cases and properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from smart_charging.shifting import PriceInterval, TariffEntry, price_intervals

HOUR = 3600


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
