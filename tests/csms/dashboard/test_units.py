"""The pure parts of the dashboard's server side: chart curves, bucket edges, histograms, CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from csms.dashboard.analytics import bucket_edges, figures, histogram, summarise, to_csv
from csms.dashboard.api import curve

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
REG, POW = "Energy.Active.Import.Register", "Power.Active.Import"


def test_curve_uses_the_chargers_power_and_the_session_start_reading() -> None:
    readings = [(T0, REG, 1000.0), (T0, POW, 7000.0), (T0 + timedelta(minutes=30), REG, 4500.0)]
    result = curve(readings, start_wh=500.0)
    assert result["t"] == [T0.timestamp(), (T0 + timedelta(minutes=30)).timestamp()]
    assert result["energy_kwh"] == [0.5, 4.0]
    assert result["power_kw"] == [7.0, None]  # no power reading at the second time


def test_curve_derives_power_from_the_register_when_the_charger_sends_none() -> None:
    readings = [(T0, REG, 0.0), (T0 + timedelta(minutes=15), REG, 2750.0)]
    result = curve(readings)
    assert result["energy_kwh"] == [0.0, 2.75]
    assert result["power_kw"] == [None, 11.0]


def test_day_buckets_follow_local_midnight_across_a_dst_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    edges = bucket_edges(date(2026, 3, 28), date(2026, 3, 30), berlin, "day")
    assert [e.isoformat() for e in edges] == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        "2026-03-31T00:00:00+02:00",
    ]
    hours = bucket_edges(date(2026, 3, 29), date(2026, 3, 29), berlin, "hour")
    assert len(hours) - 1 == 23  # the day the clocks go forward has 23 hours
    with pytest.raises(ValueError, match="ends before"):
        bucket_edges(date(2026, 3, 2), date(2026, 3, 1), berlin, "day")
    with pytest.raises(ValueError, match="at most"):
        bucket_edges(date(2020, 1, 1), date(2026, 1, 1), berlin, "hour")


def test_histogram_bins_and_the_below_range_bin() -> None:
    assert histogram((0, 10), [(1, 2), (2, 5)]) == [
        {"from": 0, "to": 10, "sessions": 2},
        {"from": 10, "to": None, "sessions": 5},
    ]
    assert histogram((0, 10), [(0, 1)])[0] == {"from": None, "to": 0, "sessions": 1}


def _raw(start: datetime, hours: int, **sums: float) -> dict[str, object]:
    base: dict[str, object] = {
        "group_id": None, "start": start, "end": start + timedelta(hours=hours),
        "evses": 2, "energy_kwh": 0.0, "occupied_s": 0.0, "charging_s": 0.0, "sessions": 0,
        "ended_sessions": 0, "failed_sessions": 0, "duration_s": 0.0, "idle_s": 0.0,
        "idle_sessions": 0, "peak_kw": 0.0,
    }  # fmt: skip
    return base | sums


def test_figures_and_summary_of_buckets() -> None:
    day1 = _raw(T0, 24, energy_kwh=10.0, occupied_s=4 * 3600, sessions=2, ended_sessions=2,
                failed_sessions=1, duration_s=7200, peak_kw=11.0)  # fmt: skip
    day2 = _raw(T0 + timedelta(days=1), 24, occupied_s=2 * 3600, peak_kw=3.0)
    first = figures(day1)
    assert (first["occupied_pct"], first["failed_rate_pct"], first["avg_duration_min"]) == (
        8.33, 50.0, 60.0,
    )  # fmt: skip
    assert figures(day2)["failed_rate_pct"] is None and figures(day2)["avg_duration_min"] is None
    both = figures(summarise([day1, day2]))
    assert (both["energy_kwh"], both["occupied_pct"], both["peak_kw"]) == (10.0, 6.25, 11.0)
    assert both["end"] == T0 + timedelta(days=2)


def test_csv_has_a_header_and_iso_times() -> None:
    text = to_csv([{"start": T0, "energy_kwh": 1.5}])
    assert text == "start,energy_kwh\n2026-03-02T08:00:00+00:00,1.5\n"
    assert to_csv([]) == ""
