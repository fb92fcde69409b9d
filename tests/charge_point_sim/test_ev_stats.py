"""EV model, statistics and scenario parsing: pure functions, no server."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from charge_point_sim.ev import (
    EVSpec,
    EVState,
    charge_step,
    ev_max_power_w,
    random_ev,
    seconds_to_full,
)
from charge_point_sim.scenario import parse_fault
from charge_point_sim.stats import Stats, percentile

SPEC = EVSpec(capacity_kwh=50.0, max_ac_kw=11.0, taper_start_soc=80.0, min_taper_fraction=0.05)
INSTANT = EVSpec(capacity_kwh=50.0, max_ac_kw=11.0, response_delay_s=0.0, ramp_s=0.0)


def test_power_is_flat_then_tapers_near_full() -> None:
    assert ev_max_power_w(SPEC, 20.0) == 11000.0
    assert ev_max_power_w(SPEC, 80.0) == 11000.0
    assert ev_max_power_w(SPEC, 90.0) == pytest.approx(11000.0 * (1 - 0.5 * 0.95))
    assert ev_max_power_w(SPEC, 100.0) == 0.0
    assert ev_max_power_w(SPEC, 50.0, dc=True) == SPEC.max_dc_kw * 1000


def test_charge_step_respects_limit_and_integrates_energy() -> None:
    ev = EVState(INSTANT, soc=20.0, target_soc=80.0)
    ev2, power, energy = charge_step(ev, limit_w=4000.0, dt_s=3600.0)
    assert power == 4000.0
    assert energy == pytest.approx(4000.0)
    assert ev2.soc == pytest.approx(28.0)  # 4 kWh of 50 kWh


def test_charge_step_stops_at_target_soc() -> None:
    ev = EVState(INSTANT, soc=79.0, target_soc=80.0)
    ev2, power, energy = charge_step(ev, limit_w=22000.0, dt_s=3600.0)
    assert energy == pytest.approx(500.0)  # exactly 1 % of 50 kWh
    assert ev2.soc == pytest.approx(80.0)
    assert ev2.done()
    assert power == 0.0  # full within the step: it draws nothing at its end
    assert charge_step(ev2, 22000.0, 60.0)[2] == 0.0


def _run(ev: EVState, limit_w: float, seconds: float, dt: float = 0.5) -> list[float]:
    powers = []
    for _ in range(int(seconds / dt)):
        ev, power, _ = charge_step(ev, limit_w, dt)
        powers.append(power)
    return powers


def test_a_lower_limit_is_followed_after_a_lag_and_a_ramp_within_five_seconds() -> None:
    ev = EVState(SPEC, soc=20.0)
    ev, _, _ = charge_step(ev, 11000.0, 10.0)  # at full power
    assert ev.power_w == pytest.approx(11000.0)
    powers = _run(ev, 2300.0, 6.0)
    # It keeps its old draw for the reaction delay (2 s): above the new limit...
    assert powers[:4] == [pytest.approx(11000.0)] * 4
    # ...then ramps down (11 kW in 3 s), and is under the limit within 5 s (IEC 61851-1).
    assert 2300.0 < powers[5] < 11000.0
    assert powers[9] == pytest.approx(2300.0)
    assert all(p == pytest.approx(2300.0) for p in powers[10:])


def test_a_higher_limit_is_ramped_up_to_not_jumped_to() -> None:
    ev, _, _ = charge_step(EVState(SPEC, soc=20.0), 2300.0, 10.0)
    powers = _run(ev, 11000.0, 8.0)
    assert powers[3] == pytest.approx(2300.0)  # still reacting
    assert 2300.0 < powers[5] < 11000.0  # ramping
    assert max(powers) == pytest.approx(11000.0)
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(powers))


def test_a_full_ev_that_stays_plugged_in_draws_nothing_until_it_leaves() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    ev = EVState(INSTANT, soc=79.9, target_soc=80.0, departure=now + timedelta(hours=2))
    ev = EVState(**{**ev.__dict__, "stays_plugged": True})
    ev, _, _ = charge_step(ev, 11000.0, 600.0)
    assert ev.full and not ev.done(now + timedelta(hours=1))
    assert charge_step(ev, 11000.0, 60.0)[1:] == (0.0, 0.0)
    assert ev.done(now + timedelta(hours=2))  # its own departure time


def test_departure_ends_session_and_random_ev_is_reproducible() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    ev = EVState(SPEC, soc=10.0, departure=now + timedelta(hours=1))
    assert not ev.done(now)
    assert ev.done(now + timedelta(hours=1))
    assert random_ev(random.Random(7)) == random_ev(random.Random(7))


def test_percentiles_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0


def test_stats_summary_counts_errors() -> None:
    stats = Stats()
    stats.record_call("Heartbeat", 0.010)
    stats.record_call("Heartbeat", 0.030)
    stats.record_call_error("Authorize", "InternalError")
    stats.record_error("timeout:Heartbeat")
    summary = stats.summary(chargers=1, sim_seconds=10, real_seconds=1)
    assert summary.sent == {"Heartbeat": 2, "Authorize": 1}
    assert summary.total_errors == 2
    assert summary.latency_ms_p50 == pytest.approx(10.0)
    assert "Authorize:InternalError=1" in summary.format()


def test_parse_fault_spec() -> None:
    spec = parse_fault("power-drop@60:charger=1,connector=2,factor=0.25,duration=120")
    assert (spec.kind, spec.at, spec.charger, spec.connector) == ("power-drop", 60.0, 1, 2)
    assert (spec.factor, spec.duration) == (0.25, 120.0)
    with pytest.raises(ValueError):
        parse_fault("explode@1")


def test_a_new_limit_is_followed_from_when_it_is_applied_not_from_the_last_step() -> None:
    """A charger that steps its EV every 30 s and at once when a limit changes: the EV
    keeps its old draw for the whole step before the change, then lags and ramps."""
    ev, _, _ = charge_step(EVState(SPEC, soc=20.0), 2300.0, 10.0)
    ev, power, energy = charge_step(ev, 11000.0, 30.0)  # applied now, 30 s after the last step
    assert power == pytest.approx(2300.0)
    assert energy == pytest.approx(2300.0 * 30.0 / 3600.0)  # all of it under the old limit
    ev, power, _ = charge_step(ev, 11000.0, 2.0)  # its reaction delay
    assert power == pytest.approx(2300.0)
    ev, power, _ = charge_step(ev, 11000.0, 3.0)  # then a ramp of at most 3 s
    assert power == pytest.approx(11000.0)


def test_an_ev_full_within_a_step_draws_nothing_at_its_end_and_says_when() -> None:
    ev = EVState(INSTANT, soc=79.0, target_soc=80.0, stays_plugged=True)
    ev, _, _ = charge_step(ev, 11000.0, 1.0)
    assert seconds_to_full(ev) == pytest.approx(500.0 * 3600.0 / 11000.0 - 1.0, rel=1e-6)
    ev, power, _ = charge_step(ev, 11000.0, 3600.0)
    assert ev.full and power == 0.0 and seconds_to_full(ev) is None
