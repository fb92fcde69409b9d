"""bench.session_cycle: a fleet's starts and stops answered, CDRs written, CPU reported.

A smoke run of the benchmark (two chargers, one second), not a timing.
"""

from __future__ import annotations

import pytest

from bench.session_cycle import report, run

pytestmark = pytest.mark.timeout(180)


async def test_starts_and_stops_are_answered_and_measured() -> None:
    result = await run(chargers=2, duration=1.0)
    assert result.latencies["start"] and result.latencies["stop"]
    assert abs(len(result.latencies["start"]) - len(result.latencies["stop"])) <= 2
    assert result.csms_cpu_s > 0 and result.postgres_cpu_s > 0
    text = report(result, 2, 1.0)
    assert "starts and stops answered" in text and "CPU per start or stop" in text
