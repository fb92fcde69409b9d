"""A site-wide time-of-use plan: deadlines first, then the price (pure; HiGHS LP).

The load manager solves it once per site with prices on every change
(:mod:`smart_charging.tou_plan`); its time at 1,000 sessions is measured by
``python -m bench.smart_charging_quality --tou``.

Problem
=======
Periods ``t = 0 .. T-1`` of ``h_t`` hours each (all equal, or the first one
shorter so the others start on the quarter hours of the tariff), a site limit ``L_t`` (kW) and a
price ``c_t`` per period; sessions ``i`` with a maximum power ``P_i`` (kW), the
energy still wanted ``E_i`` (kWh) and the number of periods ``D_i`` before
they leave (the last of them, which the departure cuts short, with its power bound
``P_i`` scaled by the fraction ``f_i`` of it before departure). Variables: ``x_it``
(kW) for ``t < D_i``.

1. **Deadlines first**: ``E* = max sum_it h_t x_it`` subject to
   ``sum_i x_it <= L_t`` (every period), ``sum_t h_t x_it <= E_i``,
   ``0 <= x_it <= P_i`` (``f_i P_i`` in its last period).
2. **Then the price**: ``min sum_it (c_t / u + e t / T) h_t x_it`` subject to the
   same and ``sum_it h_t x_it >= E* (1 - 1e-9)``, where ``u`` is the smallest
   difference between two of the prices and ``e`` = 1e-3: the tie-break adds at
   most a thousandth of a price step over the horizon, so it never outweighs a
   real price difference, and prefers earlier periods among equal prices - the
   plan charges as early as the price allows.

So the plan delivers as much energy by the departures as any schedule can -
never less than charging at once - and, among those, is the cheapest. A
session the plan gives 0 kW in the current period gives its share to the
others for that period.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EARLY = 1e-3  # of the smallest price step, over the whole horizon: breaks ties only
SOLVER = "ipm"  # interior point: 1.9 s at 1,000 sessions x 96 periods (loaded), simplex 16 s


@dataclass(frozen=True, slots=True)
class PlanSession:
    id: str
    max_kw: float
    energy_kwh: float  # still wanted
    periods: int  # before it leaves (it may charge in periods 0 .. periods-1)
    last_fraction: float = 1.0  # of its last period before it leaves (its power bound there)
    first: int = 0  # the first period it may charge in (an expected arrival: later)


@dataclass(frozen=True, slots=True)
class SitePlan:
    power_kw: Mapping[str, tuple[float, ...]]  # per session, per period
    energy_kwh: float  # delivered by the departures (the maximum possible)
    cost: float


def site_plan(
    sessions: Sequence[PlanSession],
    limit_kw: Sequence[float],
    prices: Sequence[float],
    period_h: float | Sequence[float],
    time_limit_s: float | None = None,
) -> SitePlan:
    """The plan described in the module docstring. Raises ValueError on bad input, and
    when HiGHS finds no optimal plan (in ``time_limit_s``, if given)."""
    import highspy
    import numpy as np

    horizon = len(limit_kw)
    if len(prices) != horizon:
        raise ValueError("one price per period")
    hours = [float(period_h)] * horizon if isinstance(period_h, int | float) else list(period_h)
    if len(hours) != horizon:
        raise ValueError("one period length per period")
    if any(h <= 0 for h in hours) or any(s.max_kw < 0 or s.energy_kwh < 0 for s in sessions):
        raise ValueError("periods, powers and energies must not be negative")
    ordered = sorted(sessions, key=lambda s: s.id)
    columns = [
        (i, t) for i, s in enumerate(ordered) for t in range(s.first, min(s.periods, horizon))
    ]
    out: dict[str, list[float]] = {s.id: [0.0] * horizon for s in ordered}
    if not columns:
        return SitePlan({k: tuple(v) for k, v in out.items()}, 0.0, 0.0)
    n, rows = len(columns), horizon + len(ordered)
    index = np.empty(2 * n, dtype=np.int32)
    value = np.empty(2 * n)
    for j, (i, t) in enumerate(columns):
        index[2 * j], value[2 * j] = t, 1.0
        index[2 * j + 1], value[2 * j + 1] = horizon + i, hours[t]
    upper = np.array(
        [
            ordered[i].max_kw * (ordered[i].last_fraction if t == ordered[i].periods - 1 else 1)
            for i, t in columns
        ]
    )
    length = np.array([hours[t] for _, t in columns])
    row_upper = np.array([*limit_kw, *(s.energy_kwh for s in ordered)], dtype=float)

    def solve(cost: np.ndarray, sense: highspy.ObjSense, extra: float | None) -> np.ndarray:
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("solver", SOLVER)
        if time_limit_s is not None:
            h.setOptionValue("time_limit", float(time_limit_s))
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = rows + (1 if extra is not None else 0)
        lp.sense_ = sense
        lp.col_cost_ = cost
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = upper
        lower = np.full(rows, -highspy.kHighsInf)
        upper_rows = row_upper
        idx, val = index, value
        start = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
        if extra is not None:  # total energy >= extra: one more row, every column in it
            starts = np.arange(0, 3 * n + 1, 3, dtype=np.int32)
            idx = np.empty(3 * n, dtype=np.int32)
            val = np.empty(3 * n)
            idx[0::3], idx[1::3], idx[2::3] = index[0::2], index[1::2], rows
            val[0::3], val[1::3], val[2::3] = value[0::2], value[1::2], length
            start = starts
            lower = np.append(lower, extra)
            upper_rows = np.append(row_upper, highspy.kHighsInf)
        lp.row_lower_ = lower
        lp.row_upper_ = upper_rows
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = start
        lp.a_matrix_.index_ = idx
        lp.a_matrix_.value_ = val
        h.passModel(lp)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise ValueError(f"site plan: {h.modelStatusToString(h.getModelStatus())}")
        return np.array(h.getSolution().col_value)

    best = solve(length, highspy.ObjSense.kMaximize, None)
    energy = float((best * length).sum())
    # Prices in units of their smallest step, so the tie-break (at most EARLY of a step over
    # the horizon) never outweighs a real price difference and still exceeds the solver's
    # tolerances (a 1e-9 tie-break was lost in them: equal prices came out latest first).
    steps = sorted({round(p, 9) for p in prices})
    unit = min((b - a for a, b in itertools.pairwise(steps)), default=1.0) or 1.0
    cost = np.array([(prices[t] / unit + EARLY * t / horizon) * hours[t] for _, t in columns])
    x = solve(cost, highspy.ObjSense.kMinimize, energy * (1 - 1e-9) - 1e-9)
    for (i, t), kw in zip(columns, x, strict=True):
        out[ordered[i].id][t] = max(0.0, min(float(kw), ordered[i].max_kw))
    total_cost = sum(prices[t] * hours[t] * out[ordered[i].id][t] for i, t in columns)
    return SitePlan({k: tuple(v) for k, v in out.items()}, energy, total_cost)
