"""The stall tracer names the code that held the event loop, while it held it."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from csms.loop_lag import LoopLagMonitor
from csms.loop_stalls import StallTracer
from csms.monitoring import metrics
from tests.waiting import eventually

STALL_S = 0.4


def _hold_the_loop_in_a_busy_function() -> None:
    deadline = time.monotonic() + STALL_S
    while time.monotonic() < deadline:  # pure Python: the tracer's thread gets the GIL
        sum(range(1000))


def _hold_the_loop_in_a_blocking_call() -> None:
    time.sleep(STALL_S)


async def _true(condition: bool) -> bool:
    return condition


@pytest.mark.parametrize(
    "stall", [_hold_the_loop_in_a_busy_function, _hold_the_loop_in_a_blocking_call]
)
async def test_a_stall_is_logged_with_the_function_that_held_the_loop(
    stall: object, capsys: pytest.CaptureFixture[str]
) -> None:
    tracer = StallTracer(threshold_s=0.1, log_every_s=0.0)
    tracer.start()
    try:
        await asyncio.sleep(0.05)  # a beat or two before the stall
        assert callable(stall)
        stall()
        await eventually(lambda: _true(tracer.stalls >= 1))
    finally:
        tracer.stop()
    name = stall.__qualname__  # type: ignore[attr-defined]
    assert any(name in where for where in tracer.by_where), tracer.by_where
    assert set(tracer.by_kind) <= {"busy", "off-cpu", "gc"}
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "loop.stall" in line)
    assert name in line
    assert "cpu_ms=" in line and "gc_ms=" in line


async def test_on_the_lag_monitors_beat_both_see_the_stall(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As the CSMS runs them: the tracer listens to the monitor's beat, no timer of its own."""
    monitor = LoopLagMonitor(warn_s=0.1)
    beating = asyncio.create_task(monitor.run())
    tracer = StallTracer(threshold_s=0.1, beat_s=monitor.interval, log_every_s=0.0)
    tracer.start(monitor)
    try:
        await eventually(lambda: _true(monitor.measurements >= 2))
        beats = tracer._beat
        await eventually(lambda: _true(tracer._beat is not beats))  # it follows the beat
        assert tracer._handle is None  # and keeps no timer of its own
        _hold_the_loop_in_a_busy_function()
        await eventually(lambda: _true(tracer.stalls >= 1 and monitor.max_lag >= 0.2))
    finally:
        tracer.stop()
        beating.cancel()
    assert any("_hold_the_loop_in_a_busy_function" in where for where in tracer.by_where)
    err = capsys.readouterr().err
    assert "loop.stall" in err and "loop.lag" in err
    # Stopped, the tracer no longer listens: the monitor's beat goes on without it.
    marked = tracer._beat
    measured = monitor.measurements
    beating = asyncio.create_task(monitor.run())
    try:
        await eventually(lambda: _true(monitor.measurements >= measured + 2))
    finally:
        beating.cancel()
    assert tracer._beat is marked


async def test_no_stall_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    tracer = StallTracer(threshold_s=5.0, log_every_s=0.0)
    tracer.start()
    try:
        for _ in range(5):
            await asyncio.sleep(0.02)
    finally:
        tracer.stop()
    assert tracer.stalls == 0
    assert "loop.stall" not in capsys.readouterr().err


async def test_a_stall_in_the_garbage_collector_is_named_gc() -> None:
    tracer = StallTracer(threshold_s=0.1, log_every_s=0.0)
    tracer.start()
    try:
        await asyncio.sleep(0.05)
        gc.callbacks.append(_slow_collection)  # runs inside the collection: counted as GC time
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(_slow_collection)
        await eventually(lambda: _true(tracer.stalls >= 1))
    finally:
        tracer.stop()
    assert tracer.by_kind["gc"] >= 1, tracer.by_where
    assert "gc (generation 2)" in tracer.by_where
    counted = metrics.REGISTRY.get_sample_value("csms_event_loop_stalls_total", {"kind": "gc"})
    assert counted is not None and counted >= 1


def _slow_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":  # a collection that computes for STALL_S of CPU time
        spent_until = time.thread_time() + STALL_S
        while time.thread_time() < spent_until:
            sum(range(1000))


async def test_a_collection_is_counted_by_the_loop_not_inside_the_collector() -> None:
    """The GC callback calls no metric: the loop's next beat counts the collection.

    Under ``--workers N`` prometheus_client's values share one non-reentrant lock; a
    collection that started while the loop's thread held it (creating a metric's
    labels) called a metric from the callback and the worker waited on itself forever.
    """
    tracer = StallTracer(threshold_s=10.0, beat_s=0.01)
    tracer.start()
    try:

        def full_collections() -> float:
            counted = metrics.REGISTRY.get_sample_value(
                "csms_gc_pause_seconds_count", {"generation": "2"}
            )
            return counted or 0.0

        before = full_collections()
        gc.collect()
        assert full_collections() == before  # nothing counted inside the collection
        await eventually(lambda: _true(full_collections() >= before + 1))
    finally:
        tracer.stop()
