"""The open-loop generator's pure parts: schedule, latency, message mix, lag metric."""

from __future__ import annotations

import argparse
import itertools
import math
import random
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from bench.ingest_open import parse_rates
from bench.load_targets import lag_between, lag_values
from bench.ocpp_load import CYCLE, SAMPLES_PER_METER_VALUE, ChargerScript, answer_server_call
from bench.open_loop import LatencySummary, arrival_times, percentile, replay, send_time


def test_latency_counts_from_the_scheduled_time_not_the_send() -> None:
    # Calls due every 100 ms; the first answer takes 350 ms (a stall), the rest 10 ms.
    schedule = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    service = [0.35, 0.01, 0.01, 0.01, 0.01, 0.01]
    latencies = replay(schedule, service)
    # Call 2 (due 0.1) waits for answer 1 (0.35), goes out then, answered 0.36: 260 ms, not 10.
    assert latencies == pytest.approx([0.35, 0.26, 0.17, 0.08, 0.01, 0.01])
    # A closed-loop client would have seen 350 ms once and 10 ms after: coordinated omission.
    assert max(latencies[1:]) > 10 * service[1]


def test_one_outstanding_call_per_charger() -> None:
    assert send_time(scheduled=1.0, previous_answered=0.5) == 1.0
    assert send_time(scheduled=1.0, previous_answered=1.7) == 1.7


def test_arrivals_stay_in_the_window_at_the_rate() -> None:
    rng = random.Random(3)
    even = list(arrival_times(2.0, 10.0, 20.0, rng, "even"))
    assert len(even) == 20 and all(10.0 <= t < 20.0 for t in even)
    assert all(b - a == pytest.approx(0.5) for a, b in itertools.pairwise(even))
    poisson = list(arrival_times(50.0, 0.0, 100.0, rng, "poisson"))
    assert poisson == sorted(poisson) and all(0.0 <= t < 100.0 for t in poisson)
    assert 4500 < len(poisson) < 5500  # 5,000 expected; the bound is 7 standard deviations
    assert list(arrival_times(0.0, 0.0, 10.0, rng)) == []


def test_percentiles_and_summary() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 50))
    summary = LatencySummary.of(reversed(values))
    assert (summary.count, summary.p95, summary.max) == (100, 95.0, 100.0)
    assert "n/a" in LatencySummary.of([]).text()


@pytest.mark.parametrize("v201", [False, True])
def test_message_mix_is_mostly_meter_values_inside_transactions(v201: bool) -> None:
    script = ChargerScript("CP", v201)
    calls = [script.next_call() for _ in range(2 * CYCLE)]
    kinds = Counter(call.kind for call in calls)
    assert kinds["meter"] / len(calls) > 0.75
    assert kinds["start"] == kinds["stop"] == 2 and kinds["heartbeat"] == 2
    assert kinds["status"] == 6
    assert all(c.samples == SAMPLES_PER_METER_VALUE for c in calls if c.kind == "meter")
    if v201:
        first_session = [c.payload for c in calls[:CYCLE] if c.action == "TransactionEvent"]
        assert [e["seqNo"] for e in first_session] == list(range(len(first_session)))
        assert {e["transactionInfo"]["transactionId"] for e in first_session} == {"CP-1"}
        assert first_session[0]["eventType"] == "Started"
        assert first_session[-1]["eventType"] == "Ended"


def test_a_16_charger_uses_the_transaction_id_the_csms_gave() -> None:
    script = ChargerScript("CP", v201=False)
    script.next_call()  # Preparing
    start = script.next_call()
    script.on_answer(start, {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    script.skip_to_random_meter_value(random.Random(1))
    meter = script.next_call()
    assert meter.action == "MeterValues" and meter.payload["transactionId"] == 42


def test_csms_calls_get_a_valid_minimal_answer() -> None:
    asked = {"getVariableData": [{"component": {"name": "C"}, "variable": {"name": "V"}}]}
    answer = answer_server_call("GetVariables", asked)
    assert answer["getVariableResult"][0]["attributeStatus"] == "UnknownVariable"
    assert answer_server_call("GetConfiguration", {"key": ["K"]})["unknownKey"] == ["K"]
    assert answer_server_call("GetTransactionStatus", {})["messagesInQueue"] is False
    assert answer_server_call("CostUpdated", {"totalCost": 1.0, "transactionId": "T"}) == {}
    assert answer_server_call("TriggerMessage", {}) == {"status": "Accepted"}


def _scrape(lags: list[float], node: str) -> str:
    registry = CollectorRegistry()
    histogram = Histogram(
        "csms_event_loop_lag_seconds",
        "lag",
        buckets=(0.001, 0.01, 0.05, 0.25, 1, 5),
        registry=registry,
    )
    Gauge("csms_event_loop_lag_max_seconds", "max", registry=registry).set(max(lags, default=0))
    Gauge("csms_chargers_connected", "c", ["protocol", "node"], registry=registry).labels(
        "ocpp1.6", node
    ).set(1)
    for lag in lags:
        histogram.observe(lag)
    return generate_latest(registry).decode()


def test_lag_of_a_phase_from_two_scrapes_and_absent_metric_is_none() -> None:
    node, before = lag_values(_scrape([0.0005] * 100, "n1"))
    assert node == "n1"
    # During the phase: 98 small lags, one of 30 ms and one stall of 0.2 s.
    _, after = lag_values(_scrape([0.0005] * 198 + [0.03, 0.2], "n1"))
    p99, over_50ms, gauge = lag_between({node: before}, {node: after}) or (0, 0, 0)
    assert p99 == 0.05  # the 99th of 100 phase samples is the 30 ms one: bucket <= 50 ms
    assert over_50ms == pytest.approx(0.01)
    assert gauge == 0.2
    assert lag_values("# no lag metric here\n")[1] == {}
    assert lag_between({}, {}) is None


def test_rate_lists() -> None:
    assert parse_rates("sat, 150,300,half") == ["sat", "150", "300", "half"]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rates("half,sat")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rates("0")
