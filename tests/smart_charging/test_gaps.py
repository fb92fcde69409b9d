"""Properties of the gap rule of the fair policy (smart_charging/gaps.py), on random trees."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given
from hypothesis import strategies as st

from smart_charging.allocation import Node, Session, allocate
from smart_charging.gaps import MIN_GAIN_A
from smart_charging.policies import GREEDY, POLICIES, fills_gaps
from tests.smart_charging.test_allocation import TOL, Scenario, _capacity, _usage
from tests.smart_charging.test_urgency_idle import flagged


def _gap(nodes: list[Node], sessions: list[Session], resolution: float = 0.0) -> dict[str, float]:
    return dict(allocate(nodes, sessions, resolution, fill_gaps=True).currents)


def _drawn(sessions: list[Session], currents: dict[str, float]) -> float:
    """The summed current over lines."""
    return sum(len(set(s.phases)) * currents[s.id] for s in sessions)


@given(flagged(), st.sampled_from([0.0, 0.1]))
def test_no_limit_is_exceeded_and_nobody_is_throttled(
    scenario: Scenario, resolution: float
) -> None:
    nodes, sessions = scenario
    currents = _gap(nodes, sessions, resolution)
    capacity = _capacity(nodes)
    for r, used in _usage(nodes, sessions, currents).items():
        assert used <= capacity[r] + TOL, (r, used, capacity[r])
    for s in sessions:
        a = currents[s.id]
        assert a == 0.0 or s.floor - TOL <= a <= s.cap + TOL, (s, a)


@given(flagged(), st.data())
def test_an_operator_class_is_never_overridden(scenario: Scenario, data: st.DataObject) -> None:
    """Gaps are filled inside one operator class: every class gets exactly what it would get
    without every lower class, whatever their urgency."""
    nodes, sessions = scenario
    active = [s for s in sessions if not s.idle]
    if not active:
        return
    k = data.draw(st.sampled_from(sorted({s.priority for s in active})))
    base = _gap(nodes, sessions)
    upper = [s for s in active if s.priority >= k]
    alone = _gap(nodes, upper)
    shuffled = [
        dataclasses.replace(s, urgency=data.draw(st.integers(0, 2880))) if s.priority < k else s
        for s in sessions
    ]
    again = _gap(nodes, shuffled)
    for s in upper:
        assert abs(base[s.id] - alone[s.id]) <= TOL, s
        assert abs(base[s.id] - again[s.id]) <= TOL, s


@given(flagged())
def test_a_full_ev_never_holds_capacity_another_needs(scenario: Scenario) -> None:
    nodes, sessions = scenario
    with_idle = _gap(nodes, sessions)
    active = [s for s in sessions if not s.idle]
    without = _gap(nodes, active)
    for s in active:
        assert abs(with_idle[s.id] - without[s.id]) <= TOL, s
    for s in sessions:
        if s.idle:
            assert with_idle[s.id] <= s.floor + TOL


@given(flagged())
def test_a_gap_is_filled_only_by_a_trade_that_adds_current(scenario: Scenario) -> None:
    """One operator class: against the strict class order, every session either keeps its
    current, or was paused and gets exactly its minimum (a receiver), or gives some of
    its current and keeps at least its minimum (a donor); at most one donor per
    receiver; and the site draws at least MIN_GAIN_A more per receiver."""
    nodes, flagged_sessions = scenario
    sessions = [dataclasses.replace(s, priority=0, idle=False) for s in flagged_sessions]
    strict = dict(allocate(nodes, sessions, 0.0).currents)
    gap = _gap(nodes, sessions)
    receivers = donors = 0
    for s in sessions:
        before, after = strict[s.id], gap[s.id]
        if abs(before - after) <= TOL:
            continue
        if before == 0.0:
            receivers += 1
            assert abs(after - s.floor) <= TOL, (s, after)
        else:
            donors += 1
            assert s.floor - TOL <= after < before, (s, before, after)
    assert donors <= receivers
    assert _drawn(sessions, gap) >= _drawn(sessions, strict) + receivers * MIN_GAIN_A - TOL


@given(flagged(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(scenario: Scenario, rng: random.Random) -> None:
    nodes, sessions = scenario
    shuffled_nodes, shuffled_sessions = list(nodes), list(sessions)
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_sessions)
    assert _gap(nodes, sessions, 0.1) == _gap(shuffled_nodes, shuffled_sessions, 0.1)


def test_the_gap_under_a_minimum_goes_to_a_paused_ev() -> None:
    """56 A summed over lines: the urgent three-phase EV takes 3 x 16 A; the 8 A left
    do not reach the next one's 3 x 6 A. The urgent one gives 3 x 3.4 A, the next one
    charges at its minimum: 55.8 A drawn instead of 48."""
    nodes = [Node("site", None, total_limit=56.0)]
    sessions = [
        Session("urgent", "site", max_current=16.0, urgency=10),
        Session("next", "site", max_current=16.0, urgency=5),
    ]
    assert allocate(nodes, sessions).currents == {"urgent": 16.0, "next": 0.0}
    assert allocate(nodes, sessions, fill_gaps=True).currents == {"urgent": 12.6, "next": 6.0}


def test_no_trade_for_a_gap_that_adds_nothing_or_across_operator_classes() -> None:
    nodes = [Node("site", None, total_limit=48.5)]
    urgent = Session("urgent", "site", max_current=16.0, urgency=10)
    paused = Session("paused", "site", max_current=16.0, urgency=5)
    # 0.5 A left: the trade would add under MIN_GAIN_A.
    assert allocate(nodes, [urgent, paused], fill_gaps=True).currents == {
        "urgent": 16.0,
        "paused": 0.0,
    }
    # A fleet EV (operator priority 1) never gives to a lower operator class.
    nodes = [Node("site", None, total_limit=56.0)]
    fleet = dataclasses.replace(urgent, priority=1)
    assert allocate(nodes, [fleet, paused], fill_gaps=True).currents == {
        "urgent": 16.0,
        "paused": 0.0,
    }


def test_only_the_fair_policy_fills_gaps() -> None:
    assert fills_gaps("fair")
    assert not any(fills_gaps(p) for p in GREEDY)
    assert set(POLICIES) == GREEDY | {"fair"}
