"""The event-loop lag monitor reports a stall (metric and log line), rate-limited."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from csms.loop_lag import LoopLagMonitor
from csms.monitoring import metrics
from tests.conftest import RunningCsms
from tests.csms.monitoring.test_metrics import scrape, value
from tests.waiting import eventually

STALL_S = 0.3
REPORTED_AT_LEAST_S = 0.2  # a 300 ms stall is reported as >= 200 ms, whatever the load


def _lag_line_ms(stderr: str) -> list[float]:
    """lag_ms of every loop.lag line in the captured console log."""
    return [
        float(m[1])
        for line in stderr.splitlines()
        if "loop.lag" in line
        for m in [re.search(r"lag_ms=([0-9.]+)", line)]
        if m is not None
    ]


def _lag_count_at_or_above(bound: float) -> float:
    """Observations of csms_event_loop_lag_seconds above the bucket just below ``bound``."""
    total = metrics.REGISTRY.get_sample_value("csms_event_loop_lag_seconds_count") or 0.0
    below = metrics.REGISTRY.get_sample_value(
        "csms_event_loop_lag_seconds_bucket", {"le": str(bound)}
    )
    return total - (below or 0.0)


async def test_a_blocking_stall_is_measured_and_logged(capsys: pytest.CaptureFixture[str]) -> None:
    monitor = LoopLagMonitor(warn_s=0.1)
    task = asyncio.create_task(monitor.run())
    try:
        await eventually(lambda: _true(monitor.measurements >= 2))  # it is measuring
        stalls_before = _lag_count_at_or_above(0.1)
        time.sleep(STALL_S)  # noqa: ASYNC251 -- the stall under test: it holds the loop
        await eventually(lambda: _true(monitor.max_lag >= REPORTED_AT_LEAST_S))
        assert metrics.EVENT_LOOP_LAG_MAX._value.get() >= REPORTED_AT_LEAST_S
        assert _lag_count_at_or_above(0.1) >= stalls_before + 1
    finally:
        task.cancel()
    lines = _lag_line_ms(capsys.readouterr().err)
    assert lines and max(lines) >= REPORTED_AT_LEAST_S * 1000


async def _true(condition: bool) -> bool:
    return condition


def test_log_lines_are_rate_limited_and_count_the_stalls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    monitor = LoopLagMonitor(warn_s=0.1, log_every_s=10.0)
    capsys.readouterr()
    monitor.observe(0.15, now=100.0)  # logged at once
    for second, lag in ((101.0, 0.4), (102.0, 0.2), (103.0, 0.01), (104.0, 0.3)):
        monitor.observe(lag, now=second)  # within 10 s: counted, not logged
    first = capsys.readouterr().err
    assert _lag_line_ms(first) == [150.0]
    monitor.observe(0.01, now=110.5)  # 10 s after the first line: the held-back stalls
    second = capsys.readouterr().err
    assert _lag_line_ms(second) == [400.0]
    assert "stalls=3" in second
    monitor.observe(0.01, now=125.0)  # nothing new past the threshold: no line
    assert _lag_line_ms(capsys.readouterr().err) == []


def test_the_max_gauge_covers_the_last_window_only() -> None:
    monitor = LoopLagMonitor(warn_s=10.0, window_s=60.0)
    monitor.observe(0.5, now=0.0)
    monitor.observe(0.1, now=30.0)
    monitor.observe(0.2, now=50.0)
    assert monitor.max_lag == 0.5
    monitor.observe(0.01, now=61.0)  # the 0.5 s stall is older than 60 s now
    assert monitor.max_lag == 0.2
    assert metrics.EVENT_LOOP_LAG_MAX._value.get() == 0.2
    monitor.observe(0.01, now=200.0)
    assert monitor.max_lag == 0.01


async def test_the_running_csms_reports_a_stall_on_metrics(csms: RunningCsms) -> None:
    monitor = csms.app.loop_lag
    assert monitor is not None
    await eventually(lambda: _true(monitor.measurements >= 2))
    time.sleep(STALL_S)  # noqa: ASYNC251 -- a stall of the CSMS's loop (the test shares it)
    await eventually(lambda: _true(monitor.max_lag >= REPORTED_AT_LEAST_S))
    text, samples = await scrape(csms)
    assert "csms_event_loop_lag_seconds_bucket" in text
    assert value(samples, "csms_event_loop_lag_max_seconds") >= REPORTED_AT_LEAST_S
    assert value(samples, "csms_event_loop_lag_seconds_count") >= 2
