"""Properties of the new sharing rules: idle EVs last, urgency only inside an operator class."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from smart_charging.allocation import Session, allocate
from smart_charging.urgency import (
    MOST_URGENT,
    STEP_S,
    STEPS,
    laxity_s,
    urgency_bucket,
    urgency_class,
)
from tests.smart_charging.test_allocation import (
    TOL,
    Scenario,
    _capacity,
    _usage,
    scenarios,
)

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@st.composite
def flagged(draw: st.DrawFn) -> Scenario:
    """A random tree whose sessions also carry urgency buckets and idle flags."""
    nodes, sessions = draw(scenarios())
    out = [
        dataclasses.replace(s, urgency=draw(st.integers(0, MOST_URGENT)), idle=draw(st.booleans()))
        for s in sessions
    ]
    return nodes, out


@given(flagged(), st.sampled_from([0.0, 0.1]))
def test_no_limit_is_exceeded_with_urgency_and_idle_evs(
    scenario: Scenario, resolution: float
) -> None:
    nodes, sessions = scenario
    result = allocate(nodes, sessions, resolution)
    capacity = _capacity(nodes)
    for r, used in _usage(nodes, sessions, dict(result.currents)).items():
        assert used <= capacity[r] + TOL, (r, used, capacity[r])
    for s in sessions:
        a = result.currents[s.id]
        assert a == 0.0 or s.floor - TOL <= a <= s.cap + TOL


@given(flagged())
def test_a_full_or_idle_ev_never_holds_capacity_another_needs(scenario: Scenario) -> None:
    """Every session that wants energy gets exactly what it would get without the idle ones;
    an idle one gets at most its minimum, and only from what nobody else could use."""
    nodes, sessions = scenario
    with_idle = allocate(nodes, sessions, 0.0).currents
    active = [s for s in sessions if not s.idle]
    without = allocate(nodes, active, 0.0).currents
    for s in active:
        assert abs(with_idle[s.id] - without[s.id]) <= TOL, s
    for s in sessions:
        if s.idle:
            assert with_idle[s.id] <= s.floor + TOL


@given(flagged(), st.data())
def test_urgency_never_overrides_an_operator_class(scenario: Scenario, data: st.DataObject) -> None:
    """A class's allocation does not depend on anything below it - urgency included:
    shuffle the urgency of every lower class, or drop those sessions: nothing changes."""
    nodes, sessions = scenario
    active = [s for s in sessions if not s.idle]
    if not active:
        return
    k = data.draw(st.sampled_from(sorted({s.priority for s in active})))
    base = allocate(nodes, sessions, 0.0).currents
    reshuffled = [
        dataclasses.replace(s, urgency=data.draw(st.integers(0, 11))) if s.priority < k else s
        for s in sessions
    ]
    again = allocate(nodes, reshuffled, 0.0).currents
    upper = [s for s in active if s.priority >= k]
    alone = allocate(nodes, upper, 0.0).currents
    for s in upper:
        assert abs(base[s.id] - again[s.id]) <= TOL
        assert abs(base[s.id] - alone[s.id]) <= TOL


@given(flagged())
def test_within_a_class_the_more_urgent_are_served_first(scenario: Scenario) -> None:
    """Same operator class: a session's allocation is what it gets with only its own and
    more urgent buckets present (less urgent ones never take from it)."""
    nodes, sessions = scenario
    active = [s for s in sessions if not s.idle]
    base = allocate(nodes, sessions, 0.0).currents
    for s in active:
        keep = [
            o
            for o in active
            if o.priority > s.priority or (o.priority == s.priority and o.urgency >= s.urgency)
        ]
        assert abs(allocate(nodes, keep, 0.0).currents[s.id] - base[s.id]) <= TOL


@given(st.lists(st.integers(0, 5), min_size=1, max_size=8))
def test_without_deadlines_sharing_is_as_before(priorities: list[int]) -> None:
    """Urgency 0 and no idle session: the allocation equals the operator classes alone."""
    from smart_charging.allocation import Node

    nodes = [Node("site", None, (40.0, 40.0, 40.0))]
    sessions = [
        Session(id=f"s{i}", node="site", priority=p, rank=float(i))
        for i, p in enumerate(priorities)
    ]
    plain = allocate(nodes, sessions).currents
    assert plain == allocate(nodes, [dataclasses.replace(s, urgency=0) for s in sessions]).currents


def test_laxity_and_buckets() -> None:
    # 22 kWh wanted at 3 x 16 A (11.04 kW): 2 h of charging; leaving in 3 h -> 1 h of slack.
    lax = laxity_s(NOW, NOW + timedelta(hours=3), 22_080.0, 0.0, 16.0, 3)
    assert lax is not None and abs(lax - 3600.0) < 1.0
    hour = int(3600 // STEP_S)
    assert urgency_bucket(lax) == STEPS - hour  # one class per STEP_S of slack
    assert urgency_bucket(lax - STEP_S) == STEPS - hour + 1 and urgency_bucket(0.0) == STEPS
    assert urgency_bucket(13.0 * 3600) == 0
    # Cannot be full by departure: above every session that can, the one leaving first first.
    assert urgency_bucket(-10.0, 3600.0) == MOST_URGENT - hour > STEPS
    assert urgency_bucket(-9999.0, STEP_S) > urgency_bucket(-10.0, 3600.0)
    assert urgency_bucket(None) == 0
    # Delivered what it wanted, or no deadline: no urgency.
    assert urgency_class(NOW, NOW + timedelta(hours=1), 5000.0, 6000.0, 16.0, 3) == 0
    assert urgency_class(NOW, None, 5000.0, 0.0, 16.0, 3) == 0
    # Less slack, more urgent: the bucket never falls as the deadline nears.
    buckets = [
        urgency_class(NOW + timedelta(minutes=m), NOW + timedelta(hours=16), 30_000.0, 0.0, 16, 3)
        for m in range(0, 16 * 60, 15)
    ]
    assert buckets == sorted(buckets) and buckets[0] == 0 and buckets[-1] > STEPS


@given(
    st.floats(-12 * 3600.0, 14 * 3600.0),
    st.floats(60.0, 16 * 3600.0),
    st.floats(0.0, 3600.0),
)
def test_a_charging_session_keeps_its_place_until_another_is_clearly_more_urgent(
    laxity: float, left_s: float, hysteresis_s: float
) -> None:
    """Hysteresis: charging never makes a session less urgent, keeps it in its tier (a
    session that can be full is never classed as one that cannot), and a waiting session
    of the same need passes it only with ``hysteresis_s`` less slack."""
    power_w = 3 * 230.0 * 16.0
    energy = max(0.0, left_s - laxity) * power_w / 3600.0  # so that (d - now) - E / P = laxity
    if energy <= 0.0:
        return
    departure = NOW + timedelta(seconds=left_s)
    real = laxity_s(NOW, departure, energy, 0.0, 16.0, 3)
    assert real is not None

    def g(charging: bool, later_s: float = 0.0) -> int:
        return urgency_class(NOW + timedelta(seconds=later_s), departure, energy, 0.0, 16.0, 3,
                             charging=charging, hysteresis_s=hysteresis_s)  # fmt: skip

    waiting, charging = g(False), g(True)
    assert charging >= waiting
    if 0.0 <= real < 12 * 3600.0:
        assert 1 <= charging <= STEPS  # still a session that can be full
    # A waiting twin with the same need but hysteresis_s + 30 s less slack passes it.
    if hysteresis_s + STEP_S <= real < 12 * 3600.0:
        assert g(False, hysteresis_s + STEP_S) > charging


def test_hysteresis_keeps_two_equal_sessions_from_trading_places_every_class() -> None:
    """Two sessions of equal need, one charging: the waiting one (losing a second of slack
    per second) passes the charging one only after the hysteresis, not after one class."""
    departure = NOW + timedelta(hours=6)
    need = 22_080.0  # 2 h at 11.04 kW: 4 h of slack

    def g(minutes: float, charging: bool) -> int:
        return urgency_class(NOW + timedelta(minutes=minutes), departure, need, 0.0, 16.0, 3,
                             charging=charging, hysteresis_s=600.0)  # fmt: skip

    assert g(1, False) > g(0, False)  # without hysteresis: one class a half minute later
    assert g(9, False) <= g(0, True)  # with it: not within the 10 minutes
    assert g(11, False) > g(0, True)
