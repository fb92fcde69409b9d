"""The end-to-end benchmark's own stalls: garbage collections and event-loop lag.

The CSMS, the simulated chargers and their EVs run in the benchmark's one
process, on one event loop, at ``--speed`` simulated seconds per real second.
Anything that stops that process stops the whole simulated site - no plan, no
meter value, no EV following its limit - while the clock, read from the real
one, runs on: at 600x a full garbage collection of 1.5 s is 15 simulated
minutes of a frozen fleet, which a real site (whose CSMS pauses for the same
1.5 s of *real* time) never sees. So:

* :func:`quiet_gc` freezes what the set-up allocated (``gc.freeze()``: the
  CSMS, the fleet, the imported modules are never traversed again) and raises
  the young generation's threshold, so collections are rare and short;
* :class:`PausingClock` is the simulator's clock with every garbage collection
  of this process taken out of its time: while one runs the clock stands still
  (and its sleeps last their full simulated time), as the simulated site does.
  The benchmark's figures then measure the service, not the harness;
* :class:`StallMeter` measures the collections (count, total, longest) and the
  lag of the event loop (a 10 ms real timer: how late it fires) and, with
  ``steady`` on, takes every stall of ``STALL_S`` or more out of the clock too:
  on a shared machine the process is often off the CPU for 50-200 ms while other
  jobs run (30-120 simulated s each), which a real site's CSMS would be for
  50-200 real ms. What a stall costs a day is printed with it.

What stays in the simulated time: everything the process does while it runs
(the CSMS's plans, its round trips to Postgres and to the chargers, the
simulator), each real second of it worth ``speed`` simulated seconds - the
accelerated clock's compression, which weighs on every policy alike. Loop
readings later than ``LAG_TICK_S`` but under ``STALL_S`` (a busy loop) stay in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from charge_point_sim import SimClock

LAG_TICK_S = 0.010  # real s between two readings of the loop's lag
STALL_S = 0.020  # a reading this late is a stall (12 simulated s at 600x: an EV follows a
# new limit in 5 simulated s, a meter value comes every 300)
YOUNG_THRESHOLD = 50_000  # allocations between two young collections (default 700)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """From here on, only what is allocated after the set-up is collected; restored after."""
    saved = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, saved[1], saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


class PausingClock(SimClock):
    """:class:`SimClock` that stands still while this process is stopped.

    ``elapsed`` is the real time since the start less every garbage collection's
    duration and every stall :meth:`take_out` was told of, times ``speed``. Read
    during a collection (a finalizer) it is the reading at the collection's start;
    a stall is only known once it is over, so after one the clock stands still
    until real time has caught up with what was read meanwhile: it never goes back.
    """

    def __init__(self, speed: float = 1.0) -> None:
        super().__init__(speed)
        self.paused_s = 0.0  # real seconds taken out
        self.gc_s = 0.0  # of which garbage collections
        self._gc_started: float | None = None
        self._last = 0.0
        self._callback = self._on_gc
        gc.callbacks.append(self._callback)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        elif self._gc_started is not None:
            took = time.monotonic() - self._gc_started
            self.paused_s += took
            self.gc_s += took
            self._gc_started = None

    def take_out(self, real_s: float) -> None:
        """The process stood still for ``real_s`` (a late event loop): not simulated time."""
        self.paused_s += max(0.0, real_s)

    def elapsed(self) -> float:
        real = self._gc_started if self._gc_started is not None else time.monotonic()
        self._last = max(self._last, (real - self._start_mono - self.paused_s) * self.speed)
        return self._last

    async def sleep(self, sim_seconds: float) -> None:
        """At least ``sim_seconds`` of this clock (a collection or stall lengthens it)."""
        until = self.elapsed() + max(0.0, sim_seconds)
        while (left := until - self.elapsed()) > 0:  # noqa: ASYNC110 - a time, not an event
            await asyncio.sleep(left / self.speed)


@dataclass
class Stalls:
    """What stopped the benchmark's process during one day (real seconds)."""

    gc_count: int = 0
    gc_s: float = 0.0
    gc_max_s: float = 0.0
    lag_max_s: float = 0.0
    stalls: int = 0  # loop readings late by STALL_S or more
    stalled_s: float = 0.0  # their summed lateness

    def line(self, speed: float) -> str:
        return (
            f"gc {self.gc_count} x, {self.gc_s:.2f} s (longest {self.gc_max_s * 1000:.0f} ms); "
            f"loop lag max {self.lag_max_s * 1000:.0f} ms, {self.stalls} stalls >= "
            f"{STALL_S * 1000:.0f} ms, {self.stalled_s:.2f} s = {self.stalled_s * speed / 60:.1f} "
            f"simulated min"
        )


class StallMeter:
    """Counts the collections and the event loop's stalls between :meth:`start` and
    :meth:`stop`; with a :class:`PausingClock`, takes each stall out of its time."""

    def __init__(self, clock: PausingClock | None = None) -> None:
        self.stalls = Stalls()
        self.clock = clock
        self._gc_started: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.monotonic()
        elif self._gc_started is not None:
            took = time.monotonic() - self._gc_started
            self._gc_started = None
            self.stalls.gc_count += 1
            self.stalls.gc_s += took
            self.stalls.gc_max_s = max(self.stalls.gc_max_s, took)

    async def _watch(self) -> None:
        s = self.stalls
        while True:
            gc_before = s.gc_s
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            late = time.monotonic() - before - LAG_TICK_S
            s.lag_max_s = max(s.lag_max_s, late)
            stall = late - (s.gc_s - gc_before)  # a collection is taken out by the clock
            if stall >= STALL_S:
                s.stalls += 1
                s.stalled_s += stall
                if self.clock is not None:
                    self.clock.take_out(stall)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> Stalls:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.stalls
