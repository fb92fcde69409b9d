"""The site-wide time-of-use plan: limits every period, deadlines first, then the price."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smart_charging.site_plan import PlanSession, site_plan

H = 0.25  # 15-minute periods


@st.composite
def problems(draw: st.DrawFn) -> tuple[list[PlanSession], list[float], list[float]]:
    horizon = draw(st.integers(1, 16))
    sessions = [
        PlanSession(
            id=f"s{i}",
            max_kw=float(draw(st.sampled_from([3.7, 7.4, 11.0, 22.0]))),
            energy_kwh=float(draw(st.integers(0, 40))),
            periods=draw(st.integers(0, horizon + 2)),
        )
        for i in range(draw(st.integers(0, 8)))
    ]
    limits = [float(draw(st.integers(0, 60))) for _ in range(horizon)]
    prices = [float(draw(st.integers(1, 9))) / 10 for _ in range(horizon)]
    return sessions, limits, prices


def _at_once(sessions: list[PlanSession], limits: list[float]) -> float:
    """Energy of charging at once: each period, earliest departure first, at full power."""
    left = {s.id: s.energy_kwh for s in sessions}
    total = 0.0
    for t, limit in enumerate(limits):
        room = limit
        for s in sorted(sessions, key=lambda s: (s.periods, s.id)):
            if t >= s.periods:
                continue
            kw = min(s.max_kw, room, left[s.id] / H)
            left[s.id] -= kw * H
            room -= kw
            total += kw * H
    return total


@settings(max_examples=60, deadline=None)
@given(problems())
def test_limits_every_period_and_never_less_energy_than_charging_at_once(
    problem: tuple[list[PlanSession], list[float], list[float]],
) -> None:
    sessions, limits, prices = problem
    plan = site_plan(sessions, limits, prices, H)
    for t, limit in enumerate(limits):
        assert sum(p[t] for p in plan.power_kw.values()) <= limit + 1e-6
    for s in sessions:
        powers = plan.power_kw[s.id]
        assert all(0.0 <= p <= s.max_kw + 1e-6 for p in powers)
        assert all(p == 0.0 for p in powers[s.periods :])  # not after it left
        assert sum(powers) * H <= s.energy_kwh + 1e-6
    delivered = sum(sum(p) for p in plan.power_kw.values()) * H
    assert delivered >= _at_once(sessions, limits) - 1e-6


def test_feasible_deadlines_are_met_in_the_cheapest_periods() -> None:
    # Two EVs, 2 h left each (8 periods); night price in periods 4-7.
    sessions = [PlanSession("a", 11.0, 11.0, 8), PlanSession("b", 11.0, 5.5, 8)]
    prices = [0.4] * 4 + [0.1] * 4
    plan = site_plan(sessions, [22.0] * 8, prices, H)
    assert abs(sum(plan.power_kw["a"]) * H - 11.0) < 1e-6  # met in full
    assert abs(sum(plan.power_kw["b"]) * H - 5.5) < 1e-6
    # 16.5 kWh fit in the 4 cheap periods (22 kW x 1 h = 22 kWh): nothing at the high price.
    assert all(plan.power_kw[k][t] == 0.0 for k in "ab" for t in range(4))
    assert abs(plan.cost - 16.5 * 0.1) < 1e-6


def test_deadlines_come_before_the_price() -> None:
    # "a" leaves after the expensive hour: it must charge then, whatever the price.
    sessions = [PlanSession("a", 11.0, 11.0, 4), PlanSession("b", 11.0, 11.0, 8)]
    plan = site_plan(sessions, [11.0] * 8, [0.9] * 4 + [0.1] * 4, H)
    assert abs(sum(plan.power_kw["a"]) * H - 11.0) < 1e-6
    assert abs(sum(plan.power_kw["b"]) * H - 11.0) < 1e-6
