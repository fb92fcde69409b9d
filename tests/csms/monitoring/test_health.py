"""Health score and drift tests: a slowly degrading connector is flagged before it fails."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from csms.monitoring import health, rules
from csms.monitoring.health import ChargerStats, TemperatureCell, daily_excess, temperature_drift
from csms.monitoring.rules import Finding, Thresholds
from csms.monitoring.rules_meter import MeterState, Reading, evaluate
from tests.conftest import StartCsms
from tests.csms.monitoring.alerting import alert_api

DAY0 = date(2026, 3, 1)
SICK = ("CP-3", 2)


def fleet_day(
    day: int, rng: random.Random, chargers: int = 6, degrade_per_day: float = 1.5
) -> list[tuple[tuple[str, int], float, float]]:
    """(connector, amps, celsius) readings of one day: 25 + 0.5 °C/A, sensor noise 1 °C.

    Connector 2 of CP-3 gains ``degrade_per_day`` degrees a day from day 5 on
    (a loosening contact: more heat at the same current).
    """
    out = []
    for c in range(chargers):
        for evse in (1, 2):
            key = (f"CP-{c}", evse)
            for _ in range(24):
                amps = rng.choice((8.0, 16.0, 24.0, 32.0))
                celsius = 25 + 0.5 * amps + rng.gauss(0, 1.0)
                if key == SICK and day >= 5:
                    celsius += degrade_per_day * (day - 4)
                out.append((key, amps, celsius))
    return out


def cells_of(days: dict[int, list[tuple[tuple[str, int], float, float]]]) -> list[TemperatureCell]:
    cells = []
    for day, readings in days.items():
        groups: dict[tuple[tuple[str, int], int], list[float]] = {}
        for key, amps, celsius in readings:
            groups.setdefault((key, int(amps // 4)), []).append(celsius)
        for (key, band), temps in groups.items():
            mean = sum(temps) / len(temps)
            cells.append(TemperatureCell(key, DAY0 + timedelta(days=day), band, mean, len(temps)))
    return cells


def test_robust_z_and_ewma_chart() -> None:
    assert health.robust_z(10, [1, 2, 3]) is not None
    assert health.robust_z(10, [1, 2]) is None
    assert health.robust_z(3.0, [1.0, 2.0, 3.0, 2.0, 1.0]) < 3.5  # type: ignore[operator]
    steady = [0.1, -0.2, 0.0, 0.3, -0.1, 0.2, 0.0, -0.3, 0.1, 0.0]
    chart = health.ewma_chart(steady, baseline=5)
    assert chart is not None and chart.first_out is None
    rising = [*steady[:5], 1.0, 2.0, 3.0, 4.0, 5.0]
    chart = health.ewma_chart(rising, baseline=5)
    assert chart is not None and chart.first_out is not None and chart.out_since is not None
    assert health.ewma_chart([1.0, 2.0], baseline=3) is None


def test_degrading_connector_is_flagged_before_its_first_outright_fault() -> None:
    rng = random.Random(5)
    th = Thresholds()
    history: dict[int, list[tuple[tuple[str, int], float, float]]] = {}
    meter_states: dict[tuple[str, int], MeterState] = {}
    drift_day = fault_day = None
    false_flags = []
    for day in range(40):
        history[day] = fleet_day(day, rng)
        # The outright rule sees every reading (temperature_high at 70 °C).
        for i, (key, amps, celsius) in enumerate(history[day]):
            at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day, seconds=i)
            state = meter_states.get(key, MeterState())
            reading = Reading(at=at, current_a=amps, temperature_c=celsius)
            meter_states[key], found = evaluate(state, (key[1], key[1]), reading, th)
            hot = [o for o in found if isinstance(o, Finding) and o.rule == rules.TEMPERATURE_HIGH]
            if hot and key == SICK and fault_day is None:
                fault_day = day
        excess = daily_excess(cells_of({d: history[d] for d in range(max(0, day - 13), day + 1)}))
        for key in excess:
            drift = temperature_drift(key, excess, "AC22")
            if drift is None or drift.explanation is None:
                continue
            if key == SICK:
                drift_day = drift_day if drift_day is not None else day
            else:
                false_flags.append((day, key, drift.explanation))
    assert fault_day is not None, "the degradation never became an outright fault"
    assert drift_day is not None and drift_day < fault_day - 5, (drift_day, fault_day)
    assert false_flags == []
    print(f"\ndrift flagged on day {drift_day}, outright temperature fault on day {fault_day}")


def test_explanation_is_in_words_an_operator_understands() -> None:
    rng = random.Random(9)
    days = {d: fleet_day(d, rng) for d in range(12)}
    excess = daily_excess(cells_of(days))
    drift = temperature_drift(SICK, excess, "AC22")
    assert drift is not None and drift.cohort_flag and drift.history_flag
    assert drift.explanation is not None
    assert drift.explanation.startswith("connector 2 runs ")
    assert "hotter than other chargers of model AC22 at the same current" in drift.explanation
    assert drift.explanation.endswith("days") and drift.days_flagged >= 3
    healthy = temperature_drift(("CP-1", 1), excess, "AC22")
    assert healthy is not None and healthy.explanation is None


def test_score_loses_points_with_reasons() -> None:
    assert health.health(ChargerStats(days=14)).score == 100
    bad = health.health(
        ChargerStats(days=14, faults=7, reboots=20, sessions=10, failed_sessions=5,
                     open_critical_alerts=1)
    )  # fmt: skip
    assert bad.status == "at_risk" and bad.score < 60
    assert any("connector faults" in r for r in bad.reasons)
    assert any("50 % of sessions failed" in r for r in bad.reasons)
    assert any("rebooted 20 times" in r for r in bad.reasons)


async def test_health_endpoints_over_stored_samples(start_csms: StartCsms) -> None:
    async with alert_api(start_csms) as api:
        pool = api.csms.pool
        await pool.executemany(
            "INSERT INTO chargers (charge_point_id, model) VALUES ($1, 'AC22')",
            [(f"CP-{c}",) for c in range(6)],
        )
        rng = random.Random(3)
        start = datetime.now(UTC) - timedelta(days=10)
        rows = []
        for day in range(10):
            for i, (key, amps, celsius) in enumerate(fleet_day(day, rng)):
                at = start + timedelta(days=day, seconds=i)
                rows.append((key[0], key[1], key[1], at, "Temperature", celsius, "Celsius"))
                rows.append((key[0], key[1], key[1], at, "Current.Import", amps, "A"))
        columns = ["charge_point_id", "evse_id", "connector_id", "sampled_at", "measurand"]
        await pool.copy_records_to_table(
            "meter_samples", records=rows, columns=[*columns, "value", "unit"]
        )
        response = await api.reader.get("/chargers/CP-3/health", params={"days": 14})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "AC22" and body["status"] != "healthy"
        (drift,) = body["temperature_drift"]
        assert drift["evse_id"] == 2 and drift["against_cohort"] and drift["excess_c"] > 3
        assert "hotter than other chargers of model AC22" in body["reasons"][0]
        fleet = (await api.reader.get("/health")).json()["items"]
        assert fleet[0]["charge_point_id"] == "CP-3"
        assert all(f["score"] == 100 for f in fleet[1:]), fleet
        assert (await api.reader.get("/chargers/NOPE/health")).status_code == 404
