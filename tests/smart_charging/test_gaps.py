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


def _one_operator_class(scenario: Scenario) -> tuple[list[Node], list[Session]]:
    nodes, sessions = scenario
    return nodes, [dataclasses.replace(s, priority=0, idle=False) for s in sessions]


@given(flagged())
def test_a_class_lowers_more_urgent_sessions_only_to_admit_its_own_at_their_minimum(
    scenario: Scenario,
) -> None:
    """Adding one urgency class ``c`` under the more urgent ones (the rule runs class by
    class, with donors already served, so this is each step of the allocation): each
    of those keeps its current or gives some and keeps at least its minimum; no
    more of them give than sessions of ``c`` charge at exactly their minimum; and each
    giver adds current: the sessions present draw at least MIN_GAIN_A more per giver
    than the more urgent ones alone did."""
    nodes, sessions = _one_operator_class(scenario)
    for c in sorted({s.urgency for s in sessions}):
        above = [s for s in sessions if s.urgency > c]
        with_c = [s for s in sessions if s.urgency >= c]
        before, after = _gap(nodes, above), _gap(nodes, with_c)
        givers = 0
        for s in above:
            if abs(after[s.id] - before[s.id]) > TOL:
                givers += 1
                assert s.floor - TOL <= after[s.id] < before[s.id], (s, before, after)
        at_minimum = [
            s
            for s in with_c
            if s.urgency == c and s.floor > 0 and abs(after[s.id] - s.floor) <= TOL
        ]
        assert givers <= len(at_minimum)
        assert _drawn(with_c, after) >= _drawn(above, before) + givers * MIN_GAIN_A - TOL


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


def test_what_is_left_under_a_minimum_goes_to_the_more_urgent_waiting_ev() -> None:
    """80 A summed over the lines. Two single-phase EVs leaving first take 32 A each; the
    16 A left are under the 3 x 6 A of the three-phase EV leaving next: strictly, they go
    to the EV with hours of slack. The second gives 2 A instead, and the three-phase EV
    charges at its minimum; the one with slack waits (it can charge alone later)."""
    nodes = [Node("site", None, total_limit=80.0)]
    sessions = [
        Session("first", "site", phases=(0,), max_current=32.0, urgency=30),
        Session("second", "site", phases=(1,), max_current=32.0, urgency=20),
        Session("three-phase", "site", max_current=16.0, urgency=10),
        Session("slack", "site", phases=(2,), max_current=32.0, urgency=1),
    ]
    strict = {"first": 32.0, "second": 32.0, "three-phase": 0.0, "slack": 16.0}
    assert allocate(nodes, sessions).currents == strict
    assert allocate(nodes, sessions, fill_gaps=True).currents == {
        "first": 32.0,
        "second": 30.0,
        "three-phase": 6.0,
        "slack": 0.0,
    }


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
