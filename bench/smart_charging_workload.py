"""The workload and yardsticks of ``python -m bench.smart_charging_quality`` (its docstring
documents the distributions): ACN-shaped workplace days, the LP optimum, Jain's index.

The optimum is an upper bound, not a scheduler: it knows every arrival of the
day in advance and ignores the 6 A minimum (a pilot signal below it means
"stop"), so no online scheduler reaches it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

VOLTAGE = 230.0
STEP_H = 5 / 60
DAY_START_H = 7.0
STEPS = int((19.5 - DAY_START_H) / STEP_H)  # 07:00 - 19:30
MIN_A = 6.0


@dataclass(frozen=True)
class EV:
    id: str
    arrival: int  # step
    departure: int  # step (exclusive)
    energy_wh: float
    phases: tuple[int, ...]
    max_a: float

    @property
    def max_w(self) -> float:
        return self.max_a * VOLTAGE * len(self.phases)


def workload(seed: int, n: int) -> list[EV]:
    rng = random.Random(seed)
    evs = []
    for i in range(n):
        arrival_h = rng.triangular(7.0, 10.0, 8.0)
        stay_h = rng.uniform(4.0, 9.0)
        single = i % 2 == 0
        evs.append(
            EV(
                id=f"ev{i:03d}",
                arrival=int((arrival_h - DAY_START_H) / STEP_H),
                departure=min(STEPS, int((arrival_h + stay_h - DAY_START_H) / STEP_H)),
                energy_wh=rng.uniform(5.0, 30.0) * 1000.0,
                phases=((i // 2) % 3,) if single else (0, 1, 2),
                max_a=32.0 if single else 16.0,
            )
        )
    return evs


def optimum_wh(evs: Sequence[EV], limit_w: float) -> float:
    """The most energy any schedule can deliver by departure (an LP, solved by HiGHS)."""
    import highspy
    import numpy as np

    columns = [(i, t) for i, ev in enumerate(evs) for t in range(ev.arrival, ev.departure)]
    n = len(columns)
    if n == 0:
        return 0.0
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = STEPS + len(evs)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.full(n, STEP_H)  # Wh per W in a step
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.array([evs[i].max_w for i, _ in columns])
    lp.row_lower_ = np.full(STEPS + len(evs), -highspy.kHighsInf)
    lp.row_upper_ = np.array([limit_w] * STEPS + [ev.energy_wh for ev in evs])
    # Column j: power of EV i in step t; it counts in row t (site limit) and in row
    # STEPS + i (energy wanted, times the step's length).
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * n + 1, 2, dtype=np.int32)
    index = np.empty(2 * n, dtype=np.int32)
    value = np.empty(2 * n)
    for j, (i, t) in enumerate(columns):
        index[2 * j], value[2 * j] = t, 1.0
        index[2 * j + 1], value[2 * j + 1] = STEPS + i, STEP_H
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    h.passModel(lp)
    h.run()
    return float(h.getInfo().objective_function_value)


def jain(values: Sequence[float]) -> float:
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))
