"""Properties of the allocation policies (smart_charging/policies.py): EDF, LLF, FCFS and
round robin as the allocator serves them - limits, operator classes, determinism, order."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smart_charging.allocation import Node, Session, allocate
from smart_charging.model import ChargerPlace, LiveSession, SiteConfig, SiteTree, build_problem
from smart_charging.policies import (
    GREEDY,
    NO_DEADLINE,
    POLICIES,
    ROUND_ROBIN_PERIOD_S,
    order_key,
    order_sessions,
)
from tests.smart_charging.test_allocation import TOL, Scenario, _capacity, _usage, scenarios

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@st.composite
def keyed(draw: st.DrawFn) -> Scenario:
    """A random tree whose sessions carry order keys (as order_key gives them), idle flags."""
    nodes, sessions = draw(scenarios())
    keys = st.one_of(st.just(NO_DEADLINE), st.integers(-(10**10), 0), st.integers(0, 2880))
    out = [dataclasses.replace(s, urgency=draw(keys), idle=draw(st.booleans())) for s in sessions]
    return nodes, out


times = st.integers(0, 10**9).map(lambda s: datetime.fromtimestamp(s, UTC))


def _allocate(
    policy: str, nodes: list[Node], sessions: list[Session], now: datetime
) -> dict[str, float]:
    return dict(allocate(nodes, order_sessions(policy, sessions, now), 0.1).currents)


@given(keyed(), st.sampled_from(POLICIES), times)
def test_no_limit_is_exceeded_under_any_policy(
    scenario: Scenario, policy: str, now: datetime
) -> None:
    nodes, sessions = scenario
    currents = _allocate(policy, nodes, sessions, now)
    capacity = _capacity(nodes)
    for r, used in _usage(nodes, sessions, currents).items():
        assert used <= capacity[r] + TOL, (r, used, capacity[r])
    for s in sessions:  # paused, or between its minimum and its cap: never throttled below 6 A
        a = currents[s.id]
        assert a == 0.0 or s.floor - TOL <= a <= s.cap + TOL


@given(keyed(), st.sampled_from(POLICIES), times, st.data())
def test_an_operator_class_is_never_overridden_by_the_order(
    scenario: Scenario, policy: str, now: datetime, data: st.DataObject
) -> None:
    """The sessions of an operator priority get what they would get without every session
    of a lower priority - whatever those sessions' order keys - under every policy."""
    nodes, sessions = scenario
    active = [s for s in sessions if not s.idle]
    if not active:
        return
    k = data.draw(st.sampled_from(sorted({s.priority for s in active})))
    base = _allocate(policy, nodes, sessions, now)
    higher = [s for s in active if s.priority >= k]
    alone = _allocate(policy, nodes, higher, now)
    lower = [
        dataclasses.replace(s, urgency=data.draw(st.integers(-(10**10), 2880)))
        if s.priority < k
        else s
        for s in sessions
    ]
    reordered = _allocate(policy, nodes, lower, now)
    for s in higher:
        assert abs(base[s.id] - alone[s.id]) <= TOL, s
        assert abs(base[s.id] - reordered[s.id]) <= TOL, s


@given(keyed(), st.sampled_from(POLICIES), times, st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(
    scenario: Scenario, policy: str, now: datetime, rng: random.Random
) -> None:
    nodes, sessions = scenario
    shuffled_nodes, shuffled_sessions = list(nodes), list(sessions)
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_sessions)
    assert _allocate(policy, nodes, sessions, now) == _allocate(
        policy, shuffled_nodes, shuffled_sessions, now
    )


@given(keyed(), st.sampled_from(sorted(GREEDY)), times)
def test_greedy_each_session_in_order_gets_its_maximum_or_what_is_left(
    scenario: Scenario, policy: str, now: datetime
) -> None:
    """Greedy: each active session, in the policy's order (its operator class first), gets
    the most its path allows after the sessions before it - its cap, or what is left
    (rounded down to a tenth), or 0 when that is below its minimum."""
    nodes, sessions = scenario
    ordered = order_sessions(policy, sessions, now)
    currents = dict(allocate(nodes, ordered, 0.0).currents)
    capacity = _capacity(nodes)
    before: list[Session] = []
    for s in sorted(ordered, key=lambda s: s.klass, reverse=True):
        if s.idle:
            break
        used = _usage(nodes, before, currents)
        mine = _usage(nodes, [s], {s.id: 1.0})  # its weight on each resource
        room = min(((capacity[r] - used.get(r, 0.0)) / w for r, w in mine.items() if w > 0),
                   default=math.inf)  # fmt: skip
        expected = min(s.cap, room)
        if expected < s.floor - TOL:
            expected = 0.0
        assert abs(currents[s.id] - expected) <= 1e-6, (s, currents[s.id], expected)
        before.append(s)


def test_order_keys_edf_llf_and_no_deadline() -> None:
    soon, late = NOW + timedelta(hours=2), NOW + timedelta(hours=6)
    edf_soon = order_key("edf", NOW, soon, 10_000, 0, 16, 3)
    edf_late = order_key("edf", NOW, late, 10_000, 0, 16, 3)
    assert edf_soon > edf_late > NO_DEADLINE
    assert order_key("edf", NOW, None, 10_000, 0, 16, 3) == NO_DEADLINE
    assert order_key("edf", NOW, soon, 10_000, 10_000, 16, 3) == NO_DEADLINE  # has its energy
    # Laxity: 6 h left, 33.12 kWh at 11.04 kW = 3 h -> 3 h; 2 h left, 5.52 kWh -> 1.5 h.
    assert order_key("llf", NOW, late, 33_120, 0, 16, 3) == -3 * 3600
    assert order_key("llf", NOW, soon, 5_520, 0, 16, 3) == -int(1.5 * 3600)
    assert order_key("fcfs", NOW, soon, 10_000, 0, 16, 3) == 0
    assert order_key("round-robin", NOW, soon, 10_000, 0, 16, 3) == 0


def _sessions(n: int) -> list[Session]:
    return [Session(f"s{i}", "site", max_current=16.0, rank=100.0 - i) for i in range(n)]


def test_fcfs_serves_the_earliest_start_first_and_skips_to_one_that_fits() -> None:
    nodes = [Node("site", None, (40.0, 40.0, 40.0))]
    sessions = _sessions(3)  # s2 started first, then s1, then s0
    sessions[1] = dataclasses.replace(sessions[1], max_current=30.0)
    currents = _allocate("fcfs", nodes, sessions, NOW)
    # s2 its 16 A, s1 the 24 A left (its maximum is 30), s0 nothing (0 A < 6 A).
    assert currents == {"s2": 16.0, "s1": 24.0, "s0": 0.0}
    assert _allocate("fair", nodes, sessions, NOW) == {"s0": 13.3, "s1": 13.3, "s2": 13.3}


def test_round_robin_moves_on_one_place_every_period() -> None:
    nodes = [Node("site", None, (32.0, 32.0, 32.0))]
    sessions = _sessions(4)  # arrival order s3, s2, s1, s0; two fit at 16 A
    period = timedelta(seconds=ROUND_ROBIN_PERIOD_S)
    start = datetime.fromtimestamp(0, UTC) + 1000 * 4 * period
    charging = []
    for k in range(5):
        currents = _allocate("round-robin", nodes, sessions, start + k * period + period / 2)
        charging.append(sorted(i for i, a in currents.items() if a > 0))
    assert charging == [
        ["s2", "s3"], ["s1", "s2"], ["s0", "s1"], ["s0", "s3"], ["s2", "s3"]
    ]  # fmt: skip


def test_idle_sessions_stay_last_under_a_greedy_policy() -> None:
    nodes = [Node("site", None, (20.0, 20.0, 20.0))]
    full = Session("full", "site", max_current=16.0, rank=0.0, idle=True, urgency=10**9)
    wanting = Session("wanting", "site", max_current=16.0, rank=1.0)
    currents = _allocate("edf", nodes, [full, wanting], NOW)
    assert currents == {"wanting": 16.0, "full": 0.0}


@pytest.mark.parametrize("policy", sorted(GREEDY))
def test_the_site_policy_reaches_the_allocator_through_build_problem(policy: str) -> None:
    """build_problem numbers the sessions in the site's order: one class each."""
    site = SiteConfig("s", phase_limit_a=32.0, allocation_policy=policy)
    tree = SiteTree(
        site, chargers=tuple(ChargerPlace(f"cp{i}", max_current_a=16.0) for i in range(3))
    )
    live = [LiveSession(f"cp{i}", 1, f"t{i}", rank=float(i), urgency=-i) for i in range(3)]
    problem = build_problem(tree, live, NOW)
    classes = {s.id: s.urgency for s in problem.sessions}
    assert sorted(classes.values()) == [1, 2, 3]
    fair = build_problem(SiteTree(dataclasses.replace(site, allocation_policy="fair"),
                                  chargers=tree.chargers), live, NOW)  # fmt: skip
    assert [s.urgency for s in fair.sessions] == [0, -1, -2]  # fair: as given
