"""The end-to-end benchmark's clock without its own garbage collections
(bench/smart_charging_stalls.py): it stands still while the process collects, never
goes back, and its sleeps last their full simulated time."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from bench.smart_charging_stalls import PausingClock, StallMeter, quiet_gc


def _slow_collection() -> None:
    """Garbage collect a large cyclic heap (a full collection that takes real time)."""
    junk: list[list[object]] = [[i] for i in range(300_000)]
    for a in junk:
        a.append(a)
    del junk
    gc.collect()


def test_a_collection_does_not_advance_the_clock() -> None:
    clock = PausingClock(speed=600.0)
    try:
        readings = []
        gc.callbacks.append(lambda phase, info: readings.append(clock.elapsed()))
        try:
            before_real = time.monotonic()
            before = clock.elapsed()
            _slow_collection()
            real = time.monotonic() - before_real
            after = clock.elapsed()
        finally:
            gc.callbacks.pop()
        assert clock.paused_s > 0.0
        # Only the time outside the collections counts (the list building, the reads).
        assert after - before == pytest.approx((real - clock.paused_s) * 600.0, abs=3.0)
        assert readings == sorted(readings)  # never back, also read during a collection
    finally:
        clock.close()


async def test_a_sleep_lasts_its_simulated_time_across_a_collection() -> None:
    clock = PausingClock(speed=100.0)
    try:
        start = clock.elapsed()
        task = asyncio.create_task(clock.sleep(10.0))  # 0.1 real s without collections
        await asyncio.sleep(0)
        _slow_collection()
        await task
        assert clock.elapsed() - start >= 10.0
    finally:
        clock.close()


async def test_the_meter_counts_collections_and_loop_stalls() -> None:
    meter = StallMeter()
    meter.start()
    await asyncio.sleep(0.03)
    time.sleep(0.12)  # noqa: ASYNC251 - the loop blocked: a stall
    gc.collect()
    await asyncio.sleep(0.03)
    stalls = await meter.stop()
    assert stalls.gc_count >= 1 and stalls.gc_s > 0.0
    assert stalls.stalls >= 1 and stalls.lag_max_s >= 0.1
    assert "gc" in stalls.line(600.0)


def test_quiet_gc_freezes_the_setup_and_restores_the_thresholds() -> None:
    saved = gc.get_threshold()
    with quiet_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] > saved[0]
    assert gc.get_threshold() == saved
    assert gc.get_freeze_count() == 0


async def test_a_stall_of_the_loop_is_taken_out_of_the_clock_without_going_back() -> None:
    clock = PausingClock(speed=600.0)
    meter = StallMeter(clock)
    try:
        meter.start()
        await asyncio.sleep(0.03)
        before = clock.elapsed()
        time.sleep(0.3)  # noqa: ASYNC251 - the process stopped (other jobs on the CPU)
        during = clock.elapsed()  # read before the meter knows: 180 simulated s on
        assert during - before >= 0.25 * 600.0
        await asyncio.sleep(0.05)  # the meter's timer fires late: the stall is taken out
        after = clock.elapsed()
        stalls = await meter.stop()
        assert stalls.stalls >= 1 and stalls.stalled_s >= 0.25
        assert clock.paused_s >= 0.25
        assert after >= during  # never back: it stood still until real time caught up
        assert after - during < 0.04 * 600.0  # not the 50 ms slept since (30 simulated s)
    finally:
        clock.close()
