"""bench.session_cycle: a fleet's starts and stops answered, CDRs written, CPU reported.

A smoke run of the benchmark (two chargers, one second), not a timing.
"""

from __future__ import annotations

import pytest

from bench.load_client import StrictCharger
from bench.session_cycle import _next_start_or_stop, report, run

pytestmark = pytest.mark.timeout(180)


async def test_starts_and_stops_are_answered_and_measured() -> None:
    result = await run(chargers=2, duration=1.0)
    assert result.latencies["start"] and result.latencies["stop"]
    assert abs(len(result.latencies["start"]) - len(result.latencies["stop"])) <= 2
    assert result.csms_cpu_s > 0 and result.postgres_cpu_s > 0
    text = report(result, 2, 1.0)
    assert "starts and stops answered" in text and "CPU per start or stop" in text


async def test_as_a_fleet_the_threshold_override_is_accepted_and_ends_are_answered() -> None:
    result = await run(chargers=2, duration=1.0, as_fleet=True)  # the API's PUT raises if refused
    assert result.latencies["start"] and result.latencies["stop"]


async def test_as_a_fleet_a_2_0_1_end_follows_its_start_without_a_seq_no_gap() -> None:
    charger = StrictCharger("ws://127.0.0.1:1/ocpp", "SC-1", v201=True, timeout=1)
    for _ in range(2):
        start = await _next_start_or_stop(charger, as_fleet=True)
        stop = await _next_start_or_stop(charger, as_fleet=True)
        assert (start.kind, start.payload["seqNo"]) == ("start", 0)
        assert (stop.kind, stop.payload["seqNo"]) == ("stop", 1)
    default = StrictCharger("ws://127.0.0.1:1/ocpp", "SC-2", v201=True, timeout=1)
    await _next_start_or_stop(default)
    assert (await _next_start_or_stop(default)).payload["seqNo"] > 1  # the skipped meter values
