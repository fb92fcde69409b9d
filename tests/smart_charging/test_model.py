"""The pure parts around the allocator: a site's tree, meter judgement, profile payloads."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from csms.events import MeterSample, Protocol
from smart_charging import profiles
from smart_charging.allocation import allocate
from smart_charging.model import (
    ChargerPlace,
    GroupConfig,
    LiveSession,
    SiteConfig,
    SiteTree,
    build_problem,
)
from smart_charging.tracking import Tracked, Verdict, currents_per_line, judge_sample

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _tree(**site: object) -> SiteTree:
    return SiteTree(
        SiteConfig("s", **site),  # type: ignore[arg-type]
        (GroupConfig("feeder", None, phase_limit_a=40.0),),
        (
            ChargerPlace("A", "feeder", max_current_a=32.0),
            ChargerPlace("B", None, max_current_a=16.0, priority=1),
            ChargerPlace("C", None, max_current_a=32.0, phases=1),
        ),
    )


def test_a_demand_response_cut_lowers_the_site_limit_until_it_expires() -> None:
    site = SiteConfig("s", phase_limit_a=100.0, dr_limit_a=40.0, dr_until=NOW + timedelta(1))
    assert site.phase_limit_at(NOW) == 40.0
    assert site.phase_limit_at(NOW + timedelta(days=2)) == 100.0
    assert SiteConfig("s", dr_limit_a=10.0).phase_limit_at(NOW) == 10.0
    assert SiteConfig("s").phase_limit_at(NOW) is None


def test_the_tree_carries_groups_chargers_and_connectors_and_kw_limits() -> None:
    tree = _tree(phase_limit_a=63.0, power_limit_kw=23.0)
    live = [LiveSession("A", 1, "t1", rank=1.0), LiveSession("C", 1, "t3", rank=2.0, phases=3)]
    problem = build_problem(tree, live, NOW)
    nodes = {n.id: n for n in problem.nodes}
    assert nodes["site"].phase_limits == (63.0, 63.0, 63.0)
    assert math.isclose(nodes["site"].total_limit, 100.0)  # 23 kW / 230 V
    assert nodes["group:feeder"].parent == "site"
    assert nodes["charger:A"].parent == "group:feeder"
    assert nodes["charger:C"].phase_limits == (32.0, 0.0, 0.0)  # single-phase charger on L1
    sessions = {s.id: s for s in problem.sessions}
    assert sessions["A/1"].phases == (0, 1, 2) and sessions["C/1"].phases == (0,)
    assert sessions["A/1"].min_current == 6.0 and sessions["A/1"].max_current == 32.0


def test_an_uncontrolled_session_is_taken_off_every_limit_above_it() -> None:
    tree = _tree(phase_limit_a=40.0)
    live = [
        LiveSession("A", 1, "t1", rank=1.0, uncontrolled_draw=16.0),
        LiveSession("B", 1, "t2", rank=2.0),
    ]
    problem = build_problem(tree, live, NOW)
    nodes = {n.id: n for n in problem.nodes}
    assert problem.reserved == {"A/1": 16.0}
    assert nodes["site"].phase_limits == (24.0, 24.0, 24.0)
    assert nodes["group:feeder"].phase_limits == (24.0, 24.0, 24.0)
    assert [s.id for s in problem.sessions] == ["B/1"]
    assert allocate(problem.nodes, problem.sessions).currents == {"B/1": 16.0}


def test_session_priority_overrides_the_chargers() -> None:
    tree = _tree(phase_limit_a=20.0)
    live = [
        LiveSession("A", 1, "t1", rank=1.0, priority=5),
        LiveSession("B", 1, "t2", rank=0.0),  # charger priority 1
    ]
    problem = build_problem(tree, live, NOW)
    currents = allocate(problem.nodes, problem.sessions).currents
    assert currents == {"A/1": 20.0, "B/1": 0.0}


def _sample(value: float, phase: str | None, measurand: str = "Current.Import") -> MeterSample:
    return MeterSample(NOW, measurand, value, "A", phase=phase, location="Outlet")


def test_currents_per_line_from_meter_samples() -> None:
    samples = [_sample(10.0, "L1"), _sample(9.5, "L2"), _sample(230.0, "L1-N", "Voltage")]
    assert currents_per_line(samples) == (10.0, 9.5, 0.0)
    assert currents_per_line([_sample(7.0, None)]) == (7.0, 7.0, 7.0)
    assert currents_per_line([_sample(230.0, "L1", "Voltage")]) is None


def test_meter_values_say_when_a_session_deviates_clearly() -> None:
    t = Tracked("A", 1, "t1", limit=16.0)
    assert judge_sample(t, (15.8, 15.8, 15.8), 16.0, 2.0, 1.0) is Verdict.STEADY
    assert judge_sample(t, (9.0, 9.0, 9.0), 16.0, 2.0, 1.0) is Verdict.UNDERDRAW
    assert t.observed_max == 10.0
    assert judge_sample(t, (9.2, 9.2, 9.2), 10.0, 2.0, 1.0) is Verdict.STEADY
    assert judge_sample(t, (10.0, 10.0, 10.0), 10.0, 2.0, 1.0) is Verdict.WANTS_MORE
    assert t.observed_max is None
    assert judge_sample(t, (20.0, 20.0, 20.0), 16.0, 2.0, 1.0) is Verdict.OVERDRAW
    assert t.assumed == 20.0
    single = Tracked("B", 1, "t2", limit=16.0)
    assert judge_sample(single, (16.0, 0.0, 0.0), 16.0, 2.0, 1.0) is Verdict.PHASES_CHANGED
    assert single.phases == 1
    settling = Tracked("C", 1, "t3", limit=8.0)
    assert judge_sample(settling, (16.0,) * 3, 8.0, 2.0, 1.0, settling=True) is Verdict.STEADY
    assert settling.assumed is None and settling.measured == (16.0, 16.0, 16.0)


def test_profiles_use_fixed_ids_stack_levels_amps_and_the_transaction() -> None:
    v16 = profiles.tx_profile(Protocol.V16, 2, "42", 12.34, 3)
    p16 = v16.cs_charging_profiles
    assert v16.connector_id == 2 and p16["transaction_id"] == 42
    assert (p16["charging_profile_id"], p16["stack_level"]) == (profiles.TX_PROFILE_ID + 2, 1)
    assert p16["charging_schedule"]["charging_rate_unit"] == "A"
    assert p16["charging_schedule"]["charging_schedule_period"] == [
        {"start_period": 0, "limit": 12.3, "number_phases": 3}
    ]
    v201 = profiles.tx_profile(Protocol.V201, 1, "uuid-tx", 6.0, 1)
    p201 = v201.charging_profile
    assert v201.evse_id == 1 and p201["transaction_id"] == "uuid-tx"
    assert p201["charging_profile_purpose"] == "TxProfile" and p201["stack_level"] == 1
    period = p201["charging_schedule"][0]["charging_schedule_period"][0]
    assert period == {"start_period": 0, "limit": 6.0, "number_phases": 1}
    d16 = profiles.default_profile(Protocol.V16, 0.0, 3)
    assert d16.connector_id == 0
    assert d16.cs_charging_profiles["charging_profile_purpose"] == "TxDefaultProfile"
    assert d16.cs_charging_profiles["charging_profile_id"] == profiles.DEFAULT_PROFILE_ID
    d201 = profiles.default_profile(Protocol.V201, 0.0, 3)
    assert d201.evse_id == 0 and d201.charging_profile["stack_level"] == 0
