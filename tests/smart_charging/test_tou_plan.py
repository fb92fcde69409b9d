"""The site-wide time-of-use plan as the load manager uses it (pure parts): grid, caps, energy."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smart_charging import tou_plan
from smart_charging.model import SiteConfig, SiteTree
from smart_charging.shifting import PriceSchedule, TariffEntry
from smart_charging.site_plan import site_plan
from smart_charging.tou_plan import (
    MISSED_WH,
    PERIOD_S,
    Need,
    PastSession,
    SitePlans,
    allowances,
    expected_sessions,
    grid,
    plan_input,
)

NOW = datetime(2026, 1, 15, 17, 7, 30, tzinfo=UTC)
NIGHT = PriceSchedule("UTC", (TariffEntry(time(7), 0.30), TariffEntry(time(22), 0.10)))


def _tree(phase_limit_a: float) -> SiteTree:
    return SiteTree(SiteConfig("s", phase_limit_a=phase_limit_a), prices=NIGHT)


def test_the_grid_is_the_rest_of_this_quarter_hour_then_quarter_hours_to_the_last_departure() -> (
    None
):
    starts, end = grid(NOW, NOW + timedelta(hours=1))
    assert starts[0] == NOW and starts[1] == datetime(2026, 1, 15, 17, 15, tzinfo=UTC)
    assert all((b - a).total_seconds() == PERIOD_S for a, b in itertools.pairwise(starts[1:]))
    assert end == NOW + timedelta(hours=1) and starts[-1] < end
    # Less than a minute to the next quarter hour: merged into the one after.
    late = datetime(2026, 1, 15, 17, 14, 30, tzinfo=UTC)
    assert grid(late, late + timedelta(hours=1))[0][1] == datetime(2026, 1, 15, 17, 30, tzinfo=UTC)


def test_sessions_wait_for_the_cheap_night_and_the_plan_caps_them_at_zero_now() -> None:
    # 17:07, cheap from 22:00; two EVs at 3 x 16 A wanting 3 h each before 07:00 on 32 A.
    needs = [Need(f"ev{i}", 3, 16.0, NOW + timedelta(hours=13), 3 * 11_040.0) for i in range(2)]
    problem = plan_input(_tree(32.0), needs, NOW, 0.0)
    assert problem is not None
    plan = site_plan(problem.sessions, problem.limit_kw, problem.prices, problem.hours)
    result = allowances(plan, problem, 6.0, needs)
    assert result.caps_a == {"ev0": 0.0, "ev1": 0.0}
    assert all(result.feasible.values())
    assert result.until == datetime(2026, 1, 15, 17, 15, tzinfo=UTC)


def test_a_little_power_becomes_the_minimum_and_a_deadline_now_charges_at_once() -> None:
    # Wanted within 30 min more than 30 min at 16 A can give: all it can, now, and missed.
    needs = [Need("late", 3, 16.0, NOW + timedelta(minutes=30), 20_000.0)]
    problem = plan_input(_tree(32.0), needs, NOW, 0.0)
    assert problem is not None
    plan = site_plan(problem.sessions, problem.limit_kw, problem.prices, problem.hours)
    gone = Need("gone", 3, 16.0, NOW - timedelta(minutes=1), 5_000.0)
    result = allowances(plan, problem, 6.0, [*needs, gone])
    assert result.caps_a == {"late": 16.0}  # one that has left is not capped: it charges
    assert result.feasible == {"late": False, "gone": False}


@st.composite
def _sites(draw: st.DrawFn) -> tuple[float, list[Need]]:
    count = draw(st.integers(1, 6))
    needs = []
    for i in range(count):
        phases = draw(st.sampled_from([1, 3]))
        max_a = draw(st.sampled_from([16.0, 32.0]))
        stay_min = draw(st.integers(5, 14 * 60))
        wanted = draw(st.floats(100.0, 60_000.0))
        needs.append(Need(f"ev{i}", phases, max_a, NOW + timedelta(minutes=stay_min), wanted))
    limit = draw(st.sampled_from([10.0, 16.0, 32.0, 63.0, 125.0]))
    return limit, needs


def _at_once_wh(problem_hours: list[float], limit_kw: float, sessions: list) -> float:  # type: ignore[type-arg]
    """Energy delivered by charging at once: every period, earliest departure first, at its
    maximum while the site's limit allows (the plan's fractional last period included)."""
    left = {s.id: s.energy_kwh for s in sessions}
    total = 0.0
    for t, hours in enumerate(problem_hours):
        room = limit_kw
        for s in sorted(sessions, key=lambda s: (s.periods, s.id)):
            if t >= s.periods:
                continue
            bound = s.max_kw * (s.last_fraction if t == s.periods - 1 else 1.0)
            kw = min(bound, room, left[s.id] / hours)
            left[s.id] -= kw * hours
            room -= kw
            total += kw * hours
    return total * 1000.0


@settings(max_examples=60, deadline=None)
@given(_sites())
def test_never_less_energy_than_charging_at_once_and_feasible_deadlines_are_met(
    site: tuple[float, list[Need]],
) -> None:
    limit_a, needs = site
    problem = plan_input(_tree(limit_a), needs, NOW, 0.0)
    assert problem is not None
    plan = site_plan(problem.sessions, problem.limit_kw, problem.prices, problem.hours)
    hours = problem.hours
    at_once = _at_once_wh(hours, problem.limit_kw[0], list(problem.sessions))
    assert plan.energy_kwh * 1000.0 >= at_once - 1.0
    # The limit in every period, the current one included.
    for t, limit_kw in enumerate(problem.limit_kw):
        assert sum(p[t] for p in plan.power_kw.values()) <= limit_kw + 1e-6
    result = allowances(plan, problem, 6.0, needs)
    for n in needs:
        cap = result.caps_a[n.key]
        assert cap == 0.0 or 6.0 <= cap <= n.max_a  # switched off, or at least the minimum
    if at_once >= sum(n.energy_wh for n in needs) - 1.0:
        # Charging at once meets every deadline: so does the plan, at no higher price.
        assert all(result.feasible.values())
        for n in needs:
            got = 1000.0 * sum(p * h for p, h in zip(plan.power_kw[n.key], hours, strict=True))
            assert got >= n.energy_wh - MISSED_WH
    assert math.isfinite(plan.cost)


async def test_a_plan_is_solved_once_per_input_and_a_failure_plans_without_time_of_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    woken: list[tuple[str, str]] = []
    plans = SitePlans(lambda site, reason: woken.append((site, reason)))
    needs = [Need("ev0", 3, 16.0, NOW + timedelta(hours=13), 3 * 11_040.0, 3 * 11_040.0)]
    first = await plans.current(_tree(32.0), needs, NOW, 0.0)
    assert first is not None and first.caps_a == {"ev0": 0.0}
    # Same input (only the energy delivered moved): the same plan, not solved again.
    solved: list[object] = []
    monkeypatch.setattr(tou_plan, "site_plan", lambda *a: solved.append(a))
    later = [dataclasses.replace(needs[0], energy_wh=30_000.0)]
    assert await plans.current(_tree(32.0), later, NOW, 0.0) is first and not solved

    # A new departure or energy wanted: solved again; when HiGHS fails, no time of use
    # (None) - and the same input is not tried again.
    def fail(*_: object) -> None:
        solved.append(_)
        raise ValueError("site plan: Time limit reached")

    monkeypatch.setattr(tou_plan, "site_plan", fail)
    moved = [dataclasses.replace(needs[0], departure=NOW + timedelta(hours=12))]
    assert await plans.current(_tree(32.0), moved, NOW, 0.0) is None
    assert await plans.current(_tree(32.0), moved, NOW, 0.0) is None
    assert len(solved) == 1
    more = [dataclasses.replace(moved[0], wanted_wh=40_000.0)]
    assert await plans.current(_tree(32.0), more, NOW, 0.0) is None
    assert len(solved) == 2
    # Without prices there is no plan (and its quarter-hour timer is cancelled).
    no_prices = SiteTree(SiteConfig("s", phase_limit_a=32.0))
    assert await plans.current(no_prices, moved, NOW, 0.0) is None
    plans.forget("s")
    assert woken == []


def test_a_session_leaving_within_this_quarter_hour_is_capped_for_its_own_part_of_it() -> None:
    # 17:07:30, leaving at 17:12:30: 5 of the 7.5 minutes left in the quarter hour. Wanting
    # more than 5 minutes at 16 A can give, it gets 16 A - not an average over 7.5 minutes.
    needs = [
        Need("soon", 3, 16.0, NOW + timedelta(minutes=5), 2_000.0),
        Need("later", 3, 16.0, NOW + timedelta(hours=2), 1_000.0),
    ]
    problem = plan_input(_tree(32.0), needs, NOW, 0.0)
    assert problem is not None
    assert [s.last_fraction for s in problem.sessions] == [5 / 7.5, 1.0]
    plan = site_plan(problem.sessions, problem.limit_kw, problem.prices, problem.hours)
    assert allowances(plan, problem, 6.0, needs).caps_a["soon"] == 16.0


def test_expected_arrivals_are_the_last_weeks_sessions_moved_to_their_next_occurrence() -> None:
    starts, end = grid(NOW, NOW + timedelta(hours=6))
    week = timedelta(weeks=1)
    history = [
        # A week ago, arriving in an hour for two hours: expected, a quarter of its energy.
        PastSession(NOW - week + timedelta(hours=1), NOW - week + timedelta(hours=3), 8e3, 11.0),
        # Two weeks ago, arrived before now: its next occurrence is next week, out of the grid.
        PastSession(NOW - 2 * week - timedelta(hours=1), NOW - 2 * week, 8e3, 11.0),
    ]
    expected = expected_sessions(history, starts, end, weeks=4)
    assert len(expected) == 1
    (only,) = expected
    assert only.energy_kwh == 2.0 and only.max_kw == 11.0
    assert starts[only.first] >= NOW + timedelta(hours=1) > starts[only.first - 1]
    assert starts[only.periods - 1] < NOW + timedelta(hours=3) <= starts[only.periods]


def test_with_the_arrivals_still_to_come_the_evs_present_charge_before_the_site_fills_up() -> None:
    # Cheap from 22:00; two EVs could wait for it, but last weeks filled the site from
    # 22:00 to 06:00: they charge now instead of being squeezed out at night.
    needs = [Need(f"ev{i}", 3, 16.0, NOW + timedelta(hours=13), 3 * 11_040.0) for i in range(2)]
    night = NOW.replace(hour=22, minute=0, second=0) - timedelta(weeks=1)
    full = [PastSession(night, night + timedelta(hours=8), 4 * 8 * 22_080.0, 22.08)]
    problem = plan_input(_tree(32.0), needs, NOW, 0.0, full)
    assert problem is not None and problem.expected
    sessions = problem.sessions + problem.expected
    plan = site_plan(sessions, problem.limit_kw, problem.prices, problem.hours)
    result = allowances(plan, problem, 6.0, needs)
    assert set(result.caps_a) == {"ev0", "ev1"} and all(a > 0 for a in result.caps_a.values())
    assert all(result.feasible.values())
    blind = plan_input(_tree(32.0), needs, NOW, 0.0)
    assert blind is not None
    alone = site_plan(blind.sessions, blind.limit_kw, blind.prices, blind.hours)
    assert allowances(alone, blind, 6.0, needs).caps_a == {"ev0": 0.0, "ev1": 0.0}
