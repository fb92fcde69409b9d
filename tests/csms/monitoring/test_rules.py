"""Fault-detection rules as pure functions: each rule fires on its fault, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.events import (
    ChargerBooted,
    ChargerEventsNotified,
    ConnectorStatus,
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionStarted,
)
from csms.monitoring import rules
from csms.monitoring.rules import Clear, Finding, Observation, Thresholds
from csms.monitoring.rules_engine import (
    ChargerProfile,
    ChargingLimits,
    FaultDetector,
    thresholds_for,
)
from csms.monitoring.rules_meter import MeterState, Reading, evaluate, readings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TH = Thresholds()
EVSE = (1, 1)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def found(obs: list[Observation], rule: str) -> list[Finding]:
    return [o for o in obs if isinstance(o, Finding) and o.rule == rule]


def cleared(obs: list[Observation], rule: str) -> bool:
    return any(isinstance(o, Clear) and o.rule == rule for o in obs)


def run(
    series: list[Reading], th: Thresholds = TH, limit_a: float | None = None
) -> list[list[Observation]]:
    state, out = MeterState(), []
    for reading in series:
        state, obs = evaluate(state, EVSE, reading, th, limit_a)
        out.append(obs)
    return out


def charging(n: int, power_w: float = 11_000, every_s: float = 60, **extra: Any) -> list[Reading]:
    """A healthy session: the register follows the power."""
    out, wh = [], 10_000.0
    for i in range(n):
        out.append(Reading(at=at(i * every_s), energy_wh=round(wh), power_w=power_w, **extra))
        wh += power_w * every_s / 3600
    return out


# -- status and device model ---------------------------------------------------------


def _status(
    status: ConnectorStatus, error_code: str | None = None, **kw: Any
) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id="CP", occurred_at=T0, evse_id=2, connector_id=2, status=status,
        error_code=error_code, **kw,
    )  # fmt: skip


def test_faulted_connector_is_critical_with_its_error_code() -> None:
    faulted, error = rules.connector_status(
        _status(ConnectorStatus.FAULTED, "GroundFailure", vendor_error_code="E42")
    )
    assert isinstance(faulted, Finding) and faulted.severity == "critical"
    assert "GroundFailure" in faulted.message and faulted.evidence["vendor_error_code"] == "E42"
    assert (faulted.evse_id, faulted.connector_id) == (2, 2)
    assert isinstance(error, Clear)


def test_error_code_on_a_working_connector_is_a_warning_and_available_clears() -> None:
    _, error = rules.connector_status(
        _status(ConnectorStatus.OCCUPIED, "HighTemperature", detail="Charging")
    )
    assert isinstance(error, Finding) and error.rule == rules.CONNECTOR_ERROR
    assert "HighTemperature" in error.message
    both = rules.connector_status(_status(ConnectorStatus.AVAILABLE))
    assert all(isinstance(o, Clear) for o in both)


def _notify(*items: dict[str, Any]) -> ChargerEventsNotified:
    return ChargerEventsNotified(
        charge_point_id="CP", occurred_at=T0, seq_no=0, tbc=False, event_data=items
    )


def test_notify_event_problem_and_availability_state() -> None:
    problem = {
        "event_id": 1, "timestamp": T0.isoformat(), "trigger": "Delta", "actual_value": "true",
        "tech_code": "RCD", "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1}},
        "variable": {"name": "Problem"}, "event_notification_type": "HardWiredNotification",
    }  # fmt: skip
    connector = {"name": "Connector", "evse": {"id": 2, "connector_id": 1}}
    state = {"name": "AvailabilityState"}
    faulted = {**problem, "actual_value": "Faulted", "variable": state, "component": connector}
    obs = rules.component_events(_notify(problem, faulted))
    assert [o.rule for o in obs if isinstance(o, Finding)] == [
        rules.COMPONENT_PROBLEM,
        rules.CONNECTOR_FAULTED,
    ]
    assert (obs[0].evse_id, obs[0].connector_id) == (1, 1) and "RCD" in obs[0].message  # type: ignore[union-attr]
    assert (obs[1].evse_id, obs[1].connector_id) == (2, 1)
    again = rules.component_events(
        _notify({**problem, "cleared": True}, {**faulted, "actual_value": "Available"})
    )
    assert all(isinstance(o, Clear) for o in again) and len(again) == 2
    other = {**problem, "variable": {"name": "Power"}, "actual_value": "7000"}
    assert rules.component_events(_notify(other)) == []


# -- meter rules ---------------------------------------------------------------------


def test_healthy_charging_finds_nothing() -> None:
    series = charging(
        30, voltages=(("L1-N", 231.0), ("L2-N", 228.0)), current_a=16.0, temperature_c=38.0
    )
    assert not [o for obs in run(series) for o in obs if isinstance(o, Finding)]


def test_voltage_out_of_band_needs_the_hold_time() -> None:
    low = [Reading(at=at(i * 30), voltages=(("L1-N", 230.0 * 0.88),)) for i in range(4)]
    obs = run(low, Thresholds(voltage_hold_s=60))
    assert [bool(found(o, rules.VOLTAGE_OUT_OF_BAND)) for o in obs] == [False, False, True, True]
    assert "-12 %" in found(obs[2], rules.VOLTAGE_OUT_OF_BAND)[0].message
    # 10 % is still inside the band; line-to-line 400 V is nominal.
    ok = [Reading(at=at(i * 30), voltages=(("L1-N", 253.0), ("L1-L2", 400.0))) for i in range(4)]
    assert all(cleared(o, rules.VOLTAGE_OUT_OF_BAND) for o in run(ok))


def test_overcurrent_against_rating_and_against_a_known_limit() -> None:
    high = [Reading(at=at(i * 30), current_a=40.0) for i in range(4)]
    obs = run(high)
    assert [bool(found(o, rules.OVERCURRENT)) for o in obs] == [False, False, True, True]
    over_limit = [Reading(at=at(i * 30), current_a=20.0) for i in range(4)]
    assert not any(found(o, rules.OVER_LIMIT) for o in run(over_limit))  # limit unknown: skipped
    with_limit = run(over_limit, limit_a=16.0)
    assert found(with_limit[2], rules.OVER_LIMIT) and not found(with_limit[2], rules.OVERCURRENT)
    within_margin = run([Reading(at=at(i * 30), current_a=18.0) for i in range(4)], limit_a=16.0)
    assert all(cleared(o, rules.OVER_LIMIT) for o in within_margin)


def test_temperature_high_and_rising_fast() -> None:
    hot = run([Reading(at=at(0), temperature_c=72.0)])
    assert found(hot[0], rules.TEMPERATURE_HIGH)
    rising = run([Reading(at=at(i * 60), temperature_c=40.0 + 3 * i) for i in range(5)])
    # 40 -> 52 in 4 min: more than 10 degrees within 5 min, above 45 degrees.
    assert [bool(found(o, rules.TEMPERATURE_RISING)) for o in rising] == [False] * 4 + [True]
    # A cold connector warming up under load is normal.
    warm_up = run([Reading(at=at(i * 60), temperature_c=25.0 + 11 * min(i, 1)) for i in range(5)])
    assert not any(found(o, rules.TEMPERATURE_RISING) for o in warm_up)


def test_stuck_meter_while_drawing_power() -> None:
    series = [Reading(at=at(i * 60), energy_wh=5000.0, power_w=7000.0) for i in range(8)]
    obs = run(series)
    firsts = [i for i, o in enumerate(obs) if found(o, rules.STUCK_METER)]
    assert firsts and firsts[0] == 5  # 300 s flat after the first reading
    # No power: a flat register is right.
    idle = [Reading(at=at(i * 60), energy_wh=5000.0, power_w=0.0) for i in range(8)]
    assert not any(found(o, rules.STUCK_METER) for o in run(idle))
    # It moves again: cleared.
    moving = [*series, Reading(at=at(600), energy_wh=5100.0, power_w=7000.0)]
    assert cleared(run(moving)[-1], rules.STUCK_METER)


def test_register_backwards_and_jumps() -> None:
    back = run([Reading(at=at(0), energy_wh=5000.0), Reading(at=at(60), energy_wh=4000.0)])
    assert found(back[1], rules.REGISTER_BACKWARDS)[0].severity == "critical"
    # 22 kW for 60 s is ~367 Wh; 5 kWh in a minute is impossible.
    jump = run([Reading(at=at(0), energy_wh=5000.0), Reading(at=at(60), energy_wh=10_000.0)])
    assert found(jump[1], rules.REGISTER_JUMP)
    fine = run([Reading(at=at(0), energy_wh=5000.0), Reading(at=at(60), energy_wh=5360.0)])
    assert cleared(fine[1], rules.REGISTER_JUMP) and cleared(fine[1], rules.REGISTER_BACKWARDS)


def test_late_readings_are_skipped() -> None:
    state, _ = evaluate(MeterState(), EVSE, Reading(at=at(60), energy_wh=5000.0), TH)
    state2, obs = evaluate(state, EVSE, Reading(at=at(0), energy_wh=1000.0), TH)
    assert obs == [] and state2 is state


def test_readings_group_samples_by_instant() -> None:
    def s(
        t: float, m: str, v: float, phase: str | None = None, unit: str | None = None
    ) -> MeterSample:
        return MeterSample(at(t), m, v, unit, phase)

    out = readings([
        s(0, "Energy.Active.Import.Register", 100), s(0, "Current.Import", 10, "L1"),
        s(0, "Current.Import", 12, "L2"), s(0, "Voltage", 230, "L1-N"),
        s(0, "Power.Active.Import", 2000, "L1"), s(0, "Power.Active.Import", 2100, "L2"),
        s(60, "Temperature", 30, unit="Celsius"), s(60, "Power.Active.Import", 4000),
    ])  # fmt: skip
    assert out == [
        Reading(at(0), 100, 4100, 12, (("L1-N", 230),), None),
        Reading(at(60), None, 4000, None, (), 30),
    ]


@settings(max_examples=60, deadline=None)
@given(
    powers=st.lists(st.floats(min_value=0, max_value=22_000), min_size=2, max_size=40),
    every_s=st.floats(min_value=5, max_value=900),
    volts=st.floats(min_value=230 * 0.905, max_value=230 * 1.095),
)
def test_any_consistent_meter_series_finds_nothing(
    powers: list[float], every_s: float, volts: float
) -> None:
    """Property: a register that integrates the power it reports never raises an alert."""
    series, wh = [], 0.0
    for i, p in enumerate(powers):
        series.append(Reading(at=at(i * every_s), energy_wh=round(wh), power_w=p,
                              current_a=p / 3 / volts, voltages=(("L1-N", volts),)))  # fmt: skip
        wh += p * every_s / 3600
    assert not [o for obs in run(series) for o in obs if isinstance(o, Finding)]


# -- sessions, boots, heartbeats, clock ----------------------------------------------


def test_short_sessions_again_and_again() -> None:
    state, obs = rules.ShortSessionState(), []
    for i in range(3):
        start = at(i * 300)
        state, o = rules.session_ended(state, EVSE, start, start + timedelta(seconds=8), TH)
        obs.append(o)
    assert [isinstance(o, Finding) for o in obs] == [False, False, True]
    # A normal session clears it; so does the window passing.
    _, normal = rules.session_ended(state, EVSE, at(1000), at(3000), TH)
    assert isinstance(normal, Clear)
    _, expired = rules.short_sessions_expired(state, EVSE, at(600 + 3601), TH)
    assert isinstance(expired, Clear)
    _, still = rules.short_sessions_expired(state, EVSE, at(700), TH)
    assert still is None


def test_reboot_loop_within_window_and_clears_when_window_passes() -> None:
    state = rules.RebootState()
    outcomes = []
    for i in range(3):
        state, o = rules.charger_booted(state, at(i * 100), "Watchdog", TH)
        outcomes.append(o)
    assert [isinstance(o, Finding) for o in outcomes] == [False, False, True]
    assert isinstance(rules.reboots_expired(state, at(300 + 601), TH)[1], Clear)
    spread = rules.RebootState()
    for i in range(5):
        spread, o = rules.charger_booted(spread, at(i * 700), None, TH)
        assert isinstance(o, Clear)


def test_heartbeat_gap() -> None:
    assert isinstance(rules.heartbeat_gap(at(0), at(900), 300, TH), Clear)
    gap = rules.heartbeat_gap(at(0), at(901), 300, TH)
    assert isinstance(gap, Finding) and "901 s" in gap.message


def test_clock_skew_needs_persistence_so_a_backlog_passes() -> None:
    state, outs = rules.ClockSkewState(), []
    for i in range(6):  # charger 1 h behind, every 20 s of server time
        state, o = rules.clock_skew(state, at(i * 20 - 3600), at(i * 20), TH)
        outs.append(o)
    assert [isinstance(o, Finding) for o in outs] == [False, False, False, True, True, True]
    assert "3600 s behind" in outs[3].message  # type: ignore[union-attr]
    # A burst of queued messages delivered within seconds, then live ones: no finding.
    state = rules.ClockSkewState()
    for i in range(20):
        state, o = rules.clock_skew(state, at(-3600 + i * 60), at(i * 0.1), TH)
        assert not isinstance(o, Finding)
    state, o = rules.clock_skew(state, at(3), at(3), TH)
    assert isinstance(o, Clear)
    off = Thresholds(clock_skew_max_s=0)
    assert rules.clock_skew(rules.ClockSkewState(), at(-9999), at(0), off)[1] is None


def test_threshold_overrides_are_checked() -> None:
    th = TH.with_overrides({"max_current_a": 16, "reboot_count": 5})
    assert th.max_current_a == 16.0 and th.reboot_count == 5 and isinstance(th.reboot_count, int)
    with pytest.raises(ValueError, match="unknown threshold"):
        TH.with_overrides({"max_curent_a": 16})
    with pytest.raises(ValueError, match="must be a number"):
        TH.with_overrides({"max_current_a": "16"})


# -- the detector: events routed to rules, 1.6 stop without a connector -------------


def _meter(t: float, wh: float, w: float) -> MeterSampled:
    samples = (MeterSample(at(t), "Energy.Active.Import.Register", wh, "Wh"),
               MeterSample(at(t), "Power.Active.Import", w, "W"))  # fmt: skip
    return MeterSampled(charge_point_id="CP", occurred_at=at(t), evse_id=1, connector_id=1,
                        transaction_id="7", samples=samples)  # fmt: skip


def test_detector_routes_events_and_keeps_state_per_connector() -> None:
    det = FaultDetector()
    obs = [o for i in range(8) for o in det.observe(_meter(i * 60, 5000, 7000), at(i * 60), TH)]
    assert found(obs, rules.STUCK_METER)
    boot = ChargerBooted(
        charge_point_id="CP", occurred_at=T0, protocol=Protocol.V16, vendor="V", model="M"
    )
    assert all(isinstance(o, Clear) for o in det.observe(boot, T0, TH))
    # 1.6: the stop names no connector; the detector knows it from the start.
    for i in range(3):
        start = SessionStarted(charge_point_id="CP", occurred_at=at(i * 100), evse_id=2,
                               connector_id=2, transaction_id=f"t{i}", id_token="TAG")  # fmt: skip
        stop = SessionEnded(
            charge_point_id="CP", occurred_at=at(i * 100 + 5), transaction_id=f"t{i}"
        )
        det.observe(start, at(i * 100), TH)
        last = det.observe(stop, at(i * 100 + 5), TH)
    shorts = found(last, rules.SHORT_SESSIONS)
    assert shorts and (shorts[0].evse_id, shorts[0].connector_id) == (2, 2)
    # The window passes on the charger's clock: the tick clears it.
    ticked = det.tick(at(205 + 3700), lambda _: TH)
    assert ("CP", Clear(rules.SHORT_SESSIONS, 2, 2)) in ticked


def test_charging_limits_from_smart_charging_events() -> None:
    limits = ChargingLimits()
    assert limits.limit_of("CP", 1) is None
    limits.limit_set("CP", {"evse_id": 0, "limit_a": 20.0, "status": "Accepted"})
    limits.limit_set(
        "CP", {"evse_id": 1, "limit_a": 10.0, "status": "Accepted", "transaction_id": "7"}
    )
    limits.limit_set("CP", {"evse_id": 2, "limit_a": 6.0, "status": "Rejected"})
    assert (limits.limit_of("CP", 1), limits.limit_of("CP", 2)) == (10.0, 20.0)
    limits.transaction_ended("CP", "7")  # a TxProfile ends with its transaction
    assert limits.limit_of("CP", 1) == 20.0 and limits.limit_of("OTHER", 1) is None


def test_thresholds_for_layers_site_model_rating_and_charger() -> None:
    overrides = {
        ("site", "S1"): {"voltage_hold_s": 0, "max_current_a": 63},
        ("model", "AC11"): {"max_current_a": 16, "reboot_count": 5},
        ("charger", "CP"): {"reboot_count": 7},
        ("charger", "BAD"): {"nope": 1},
    }
    profile = ChargerProfile(model="AC11", site_id="S1")
    th, refused = thresholds_for("CP", profile, TH, overrides)
    assert (th.voltage_hold_s, th.max_current_a, th.reboot_count) == (0.0, 16.0, 7)
    assert refused == []
    # The rating configured in smart charging beats the model's, the charger's own beats both.
    rated, _ = thresholds_for("CP", ChargerProfile("AC11", "S1", 20.0, 1), TH, overrides)
    assert (rated.max_current_a, rated.max_power_w) == (20.0, 20.0 * 230)
    plain, refused = thresholds_for("BAD", ChargerProfile(), TH, overrides)
    assert plain == TH and refused == ["charger: unknown threshold 'nope'"]
