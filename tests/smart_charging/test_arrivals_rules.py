"""The TxDefault of every charger, planned with the sessions (smart_charging/arrivals.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from smart_charging.allocation import allocate
from smart_charging.arrivals import (
    RAISE_STEP_A,
    default_changes,
    default_targets,
    headroom,
    hold_for_arrivals,
)
from smart_charging.failsafe import charger_lines, failsafe_shares, node_limits, node_paths
from smart_charging.model import (
    ChargerPlace,
    GroupConfig,
    LiveSession,
    SiteConfig,
    SiteTree,
    build_problem,
)

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
limits = st.one_of(st.none(), st.floats(min_value=0, max_value=200, allow_nan=False))


@st.composite
def sites(draw: st.DrawFn) -> tuple[SiteTree, list[LiveSession]]:
    group_ids = draw(st.lists(st.sampled_from("abc"), unique=True, max_size=3))
    groups = tuple(GroupConfig(g, parent_id=None, phase_limit_a=draw(limits)) for g in group_ids)
    chargers = tuple(
        ChargerPlace(
            f"CP{i:02d}",
            group_id=draw(st.one_of(st.none(), st.sampled_from(group_ids or ["none"]))),
            max_current_a=draw(st.sampled_from([16.0, 32.0])),
            phases=draw(st.sampled_from([1, 3])),
            priority=draw(st.integers(0, 1)),
            connectors=draw(st.integers(1, 2)),
        )
        for i in range(draw(st.integers(1, 12)))
    )
    site = SiteConfig(
        "site",
        phase_limit_a=draw(st.floats(0, 120, allow_nan=False)),
        power_limit_kw=draw(st.one_of(st.none(), st.floats(0, 80, allow_nan=False))),
        arrival_reserve_a=draw(st.sampled_from([0.0, 6.0, 20.0])),
    )
    tree = SiteTree(site, groups, chargers)
    live = []
    for place in chargers:
        for evse in range(1, place.connectors + 1):
            if draw(st.booleans()):
                live.append(
                    LiveSession(
                        place.charge_point_id,
                        evse,
                        f"tx-{place.charge_point_id}-{evse}",
                        rank=float(len(live)),
                        phases=place.phases,
                        uncontrolled_draw=draw(st.sampled_from([None, None, None, 10.0])),
                    )
                )
    return tree, live


@settings(max_examples=300, deadline=None)
@given(sites())
def test_sessions_and_every_arrival_at_once_stay_under_every_limit(
    case: tuple[SiteTree, list[LiveSession]],
) -> None:
    tree, live = case
    problem = build_problem(tree, live, NOW)
    allocation = allocate(hold_for_arrivals(problem.nodes, tree.site.arrival_reserve_a),
                          problem.sessions)  # fmt: skip
    currents = {**allocation.currents, **problem.reserved}
    busy: dict[str, list[float]] = {}
    for s in live:
        busy.setdefault(s.charge_point_id, []).append(currents[s.key])
    free = {
        c.charge_point_id: c.connectors - len(busy.get(c.charge_point_id, []))
        for c in tree.chargers
    }
    ceilings = failsafe_shares(tree, NOW)
    steerable = {c.charge_point_id for c in tree.chargers}
    room = headroom(problem.nodes, problem.sessions, allocation.currents)
    targets = default_targets(tree, room, ceilings, free, busy, steerable)

    # Load set aside (uncontrolled sessions) may already be over a limit on its own: what
    # is checked is that the sessions and the TxDefaults fit in what it leaves.
    paths, node_limit = node_paths(tree), node_limits(tree, NOW)
    drawn = {node: [0.0, 0.0, 0.0, 0.0] for node in node_limit}
    aside = {node: [0.0, 0.0, 0.0, 0.0] for node in node_limit}
    for place in tree.chargers:
        cp = place.charge_point_id
        d = targets[cp]
        assert 0.0 <= d <= ceilings[cp] + 1e-9
        assert d == 0.0 or d >= tree.site.min_current_a - 1e-9
        # Each connector: its session's limit, or the TxDefault of the next one to start.
        per_connector = [max(a, d) for a in busy.get(cp, [])] + [d] * free[cp]
        set_aside = sum(problem.reserved.get(s.key, 0.0) for s in live if s.charge_point_id == cp)
        for s in live:
            if s.charge_point_id == cp:
                assert d <= currents[s.key] + 1e-9  # a session that ends frees at least d
        lines = charger_lines(place)
        for node in paths[cp]:
            for line in lines:
                drawn[node][line] += sum(per_connector) - set_aside
                aside[node][line] += set_aside
            drawn[node][3] += (sum(per_connector) - set_aside) * len(lines)
            aside[node][3] += set_aside * len(lines)
    for node, (per_line, total) in node_limit.items():
        for line in range(3):
            left = max(0.0, per_line[line] - aside[node][line])
            assert drawn[node][line] <= left + 1e-6, (node, line, drawn[node])
        assert drawn[node][3] <= max(0.0, total - aside[node][3]) + 1e-6, (node, drawn[node])


def test_the_reserve_is_held_for_arrivals_and_shared_by_the_idle_chargers() -> None:
    tree = SiteTree(
        SiteConfig("s", phase_limit_a=32.0, arrival_reserve_a=12.0),
        chargers=tuple(ChargerPlace(f"CP{i}", max_current_a=32.0) for i in range(4)),
    )
    live = [LiveSession("CP0", 1, "tx", rank=0.0)]
    problem = build_problem(tree, live, NOW)
    allocation = allocate(hold_for_arrivals(problem.nodes, 12.0), problem.sessions)
    assert allocation.currents == {"CP0/1": 20.0}  # 32 A less the 12 A held
    room = headroom(problem.nodes, problem.sessions, allocation.currents)
    free = {"CP0": 0, "CP1": 1, "CP2": 1, "CP3": 1}
    targets = default_targets(
        tree, room, failsafe_shares(tree, NOW), free, {"CP0": [20.0]}, set(free)
    )
    # 12 A over three idle chargers is 4 A each, under the 6 A minimum: two get 6 A.
    assert targets == {"CP0": 8.0, "CP1": 6.0, "CP2": 6.0, "CP3": 0.0}


def test_decreases_always_go_raises_only_by_a_step_or_to_the_ceiling() -> None:
    tree = SiteTree(
        SiteConfig("s"), chargers=(ChargerPlace("A"), ChargerPlace("B"), ChargerPlace("C"))
    )
    ceilings = {"A": 10.0, "B": 10.0, "C": 10.0}
    applied = {"A": 8.0, "B": 8.0}  # C unknown (just rebooted)
    small = 8.0 + RAISE_STEP_A / 2
    free = {"A": 1, "B": 1, "C": 1}
    changes = default_changes(tree, {"A": 7.9, "B": small, "C": 9.0}, applied, ceilings, free)
    assert [(c.charge_point_id, c.limit, c.is_decrease) for c in changes] == [
        ("A", 7.9, True),
        ("C", 9.0, True),  # unknown: sent with the decreases
    ]
    changes = default_changes(tree, {"A": 10.0, "B": 9.5}, applied, ceilings, free)
    assert [(c.charge_point_id, c.is_decrease) for c in changes] == [("A", False), ("B", False)]
    # A busy charger (no free connector) is not raised: it waits until its session ends.
    busy = {"A": 0, "B": 1}
    changes = default_changes(tree, {"A": 10.0, "B": 6.0}, applied, ceilings, busy)
    assert [(c.charge_point_id, c.limit) for c in changes] == [("B", 6.0)]
