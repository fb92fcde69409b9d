"""Predictive maintenance: a health score per charger and drift tests, explained in words.

Everything here is a pure function over rolling statistics that
:mod:`csms.monitoring.health_store` reads from Postgres:

* **Temperature against load.** For each charger model (the cohort), the
  expected temperature at a given current is the median over the cohort's
  connectors in that current band; a connector's *excess* is how much hotter
  it runs than that, per day. Comparing at the same current removes the load
  (a busy connector is warmer, not broken).
* **Drift against the cohort**: a robust z-score of the connector's recent
  excess among the other connectors of its model (median and MAD, so one sick
  charger does not hide itself by inflating the spread; Iglewicz & Hoaglin's
  |z| > 3.5 cut-off), plus a practical floor in degrees.
* **Drift against its own history**: an EWMA control chart of the daily
  excess, with the baseline (robust mean and sigma) from the connector's
  earlier days; a point above the upper control limit is drift. The EWMA sees
  a slow, steady rise well before any single day crosses an outright
  threshold (the ``temperature_high`` alert).
* **Rates**: faults, reboots and failed (very short or empty) sessions per day.

The score starts at 100 and loses points per finding; every lost point has a
sentence saying why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

MAD_SCALE = 1.4826  # MAD * this estimates sigma for normal data
COHORT_Z = 3.5  # Iglewicz & Hoaglin's outlier cut-off for the modified z-score
MIN_EXCESS_C = 3.0  # below this many degrees a difference is not worth an operator's time
MIN_SIGMA_C = 0.5  # floor of the spread: sensors round to tenths, cohorts can be identical
EWMA_LAMBDA = 0.3
EWMA_L = 3.0


def robust_z(value: float, others: Sequence[float], min_sigma: float = MIN_SIGMA_C) -> float | None:
    """Modified z-score of ``value`` among ``others`` (None with fewer than 3 others)."""
    if len(others) < 3:
        return None
    median = statistics.median(others)
    mad = statistics.median(abs(x - median) for x in others)
    return (value - median) / max(MAD_SCALE * mad, min_sigma)


@dataclass(frozen=True, slots=True)
class EwmaChart:
    """An EWMA control chart over a series: where (if anywhere) it left its limits."""

    baseline_mean: float
    baseline_sigma: float
    ewma: tuple[float, ...]
    upper: tuple[float, ...]
    first_out: int | None  # index of the first point above the upper limit
    out_since: int | None  # start of the trailing run of points above the limit


def ewma_chart(
    series: Sequence[float],
    baseline: int,
    lam: float = EWMA_LAMBDA,
    width: float = EWMA_L,
    min_sigma: float = MIN_SIGMA_C,
) -> EwmaChart | None:
    """Chart ``series[baseline:]`` against the first ``baseline`` points (robust mean, sigma)."""
    if baseline < 3 or len(series) <= baseline:
        return None
    base = series[:baseline]
    mean = statistics.median(base)
    sigma = max(MAD_SCALE * statistics.median(abs(x - mean) for x in base), min_sigma)
    z, ewma, upper = mean, [], []
    first_out = out_since = None
    for i, x in enumerate(series[baseline:], start=1):
        z = lam * x + (1 - lam) * z
        limit = mean + width * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        ewma.append(z)
        upper.append(limit)
        index = baseline + i - 1
        if z > limit:
            first_out = index if first_out is None else first_out
            out_since = index if out_since is None else out_since
        else:
            out_since = None
    return EwmaChart(mean, sigma, tuple(ewma), tuple(upper), first_out, out_since)


# -- temperature against load ------------------------------------------------------------

ConnectorKey = tuple[str, int]  # (charge point id, EVSE id)


@dataclass(frozen=True, slots=True)
class TemperatureCell:
    """Mean temperature of one connector on one day in one current band."""

    connector: ConnectorKey
    day: date
    band: int  # current band index (e.g. 4 A wide)
    mean_c: float
    samples: int


def daily_excess(cells: Sequence[TemperatureCell]) -> dict[ConnectorKey, dict[date, float]]:
    """Per connector and day: degrees above the cohort's median at the same current band.

    The cohort median of a (day, band) excludes the connector itself; cells
    with no other connector in the same band are left out.
    """
    by_slot: dict[tuple[date, int], list[TemperatureCell]] = {}
    for cell in cells:
        by_slot.setdefault((cell.day, cell.band), []).append(cell)
    weighted: dict[ConnectorKey, dict[date, tuple[float, int]]] = {}
    for slot_cells in by_slot.values():
        for cell in slot_cells:
            others = [c.mean_c for c in slot_cells if c.connector != cell.connector]
            if not others:
                continue
            excess = cell.mean_c - statistics.median(others)
            days = weighted.setdefault(cell.connector, {})
            total, n = days.get(cell.day, (0.0, 0))
            days[cell.day] = (total + excess * cell.samples, n + cell.samples)
    return {
        key: {day: total / n for day, (total, n) in sorted(days.items()) if n}
        for key, days in weighted.items()
    }


@dataclass(frozen=True, slots=True)
class TemperatureDrift:
    """What the drift tests say about one connector's temperature."""

    connector: ConnectorKey
    recent_excess_c: float  # mean excess over the recent days
    cohort_z: float | None
    cohort_flag: bool
    history_flag: bool
    days_flagged: int  # trailing days the connector has been out of line
    explanation: str | None


def temperature_drift(
    connector: ConnectorKey,
    excess: Mapping[ConnectorKey, Mapping[date, float]],
    model: str | None,
    recent_days: int = 3,
) -> TemperatureDrift | None:
    """Run both drift tests on one connector's daily excess series (None: no data)."""
    own = excess.get(connector)
    if not own:
        return None
    days = sorted(own)
    series = [own[d] for d in days]
    recent = series[-recent_days:]
    recent_mean = statistics.fmean(recent)
    cohort = [
        statistics.fmean([v for _, v in sorted(d.items())][-recent_days:])
        for key, d in excess.items()
        if key != connector and d
    ]
    z = robust_z(recent_mean, cohort)
    cohort_flag = z is not None and z > COHORT_Z and recent_mean >= MIN_EXCESS_C
    chart = ewma_chart(series, baseline=max(3, len(series) // 2))
    history_flag = chart is not None and chart.out_since is not None and recent_mean >= MIN_EXCESS_C
    trailing = 0
    for value in reversed(series):
        if value < MIN_EXCESS_C:
            break
        trailing += 1
    explanation = None
    if cohort_flag or history_flag:
        evse = connector[1]
        parts = []
        if cohort_flag:
            parts.append(
                f"connector {evse} runs {recent_mean:.0f} °C hotter than other chargers of "
                f"{'model ' + model if model else 'this model'} at the same current"
            )
        if history_flag and chart is not None:
            parts.append(
                f"{'and' if cohort_flag else f'connector {evse}'} is "
                f"{recent_mean - chart.baseline_mean:.0f} °C above its own earlier level"
            )
        explanation = " ".join(parts) + f", for {trailing} day{'s' if trailing != 1 else ''}"
    return TemperatureDrift(
        connector, recent_mean, z, cohort_flag, history_flag, trailing, explanation
    )


# -- the score ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargerStats:
    """Rolling counts of one charger over ``days`` days."""

    days: float
    faults: int = 0
    reboots: int = 0
    sessions: int = 0
    failed_sessions: int = 0
    open_critical_alerts: int = 0
    open_warning_alerts: int = 0


@dataclass(frozen=True, slots=True)
class Health:
    """A charger's score (0-100, higher is healthier) and why it is not 100."""

    score: int
    status: str  # healthy, watch, at_risk
    reasons: tuple[str, ...] = ()
    drift: tuple[TemperatureDrift, ...] = field(default_factory=tuple)


def health(stats: ChargerStats, drifts: Sequence[TemperatureDrift] = ()) -> Health:
    """Score a charger: each finding costs points, capped per kind, and says why."""
    lost: list[tuple[float, str]] = []
    per_day = max(stats.days, 1e-9)
    if stats.faults:
        rate = stats.faults / per_day
        lost.append((min(30.0, 10 * rate + 5), f"{stats.faults} connector faults in "
                     f"{stats.days:g} days ({rate:.1f} per day)"))  # fmt: skip
    if stats.reboots:
        rate = stats.reboots / per_day
        if rate > 0.5:
            lost.append((min(20.0, 10 * rate), f"rebooted {stats.reboots} times in "
                         f"{stats.days:g} days"))  # fmt: skip
    if stats.sessions >= 3 and stats.failed_sessions:
        share = stats.failed_sessions / stats.sessions
        if share >= 0.1:
            lost.append((min(30.0, 60 * share), f"{share * 100:.0f} % of sessions failed "
                         f"({stats.failed_sessions} of {stats.sessions} ended within a minute "
                         "or delivered no energy)"))  # fmt: skip
    for drift in drifts:
        if drift.explanation:
            lost.append((20.0 if drift.cohort_flag and drift.history_flag else 12.0,
                         drift.explanation))  # fmt: skip
    if stats.open_critical_alerts:
        lost.append((min(30.0, 15.0 * stats.open_critical_alerts),
                     f"{stats.open_critical_alerts} critical alert(s) open"))  # fmt: skip
    if stats.open_warning_alerts:
        lost.append((min(10.0, 5.0 * stats.open_warning_alerts),
                     f"{stats.open_warning_alerts} warning alert(s) open"))  # fmt: skip
    score = max(0, round(100 - sum(points for points, _ in lost)))
    status = "healthy" if score >= 85 else "watch" if score >= 60 else "at_risk"
    reasons = tuple(text for _, text in sorted(lost, key=lambda x: -x[0]))
    return Health(score, status, reasons, tuple(d for d in drifts if d.explanation))
