"""Stall tracer: what held the event loop, caught while it held it.

The lag monitor (csms/loop_lag.py) says *that* the loop was held; by the time
the late task runs, whatever held it is gone. The :class:`StallTracer` names
it: the loop bumps a timestamp every ``beat_s`` -- at the lag monitor's beat
when it is given one (the CSMS does: one timer serves both), else on a
``call_later`` chain of its own -- and a watchdog thread looks at that
timestamp every ``poll_s``. While the loop is
``threshold_s`` or more overdue, the thread samples the loop thread's Python
stack (``sys._current_frames``: the interpreter hands the thread the GIL
within its 5 ms switch interval, so a loop stuck in Python code is sampled
while it is stuck). When the loop beats again, one ``loop.stall`` warning says:

* ``lag_ms``: how long the loop was held;
* ``cpu_ms``: CPU time the loop thread used meanwhile. Close to ``lag_ms``:
  the process computed (the stack names what). Far below: it waited -- a
  blocking call (the stack shows it) or the operating system ran other
  processes instead (a shared, overloaded machine; the stack is then wherever
  the thread was preempted);
* ``gc_ms``: time spent in the garbage collector during the stall (all
  generations; ``csms_gc_pause_seconds`` has every pause);
* ``kind``: ``gc`` (the collector took at least half the stall), ``busy``
  (the loop thread computed for at least half of it) or ``off-cpu`` (it did
  not run: a blocking call, or the operating system gave the CPU to other
  processes -- on a saturated machine most stalls that remain are these);
* ``where``: the innermost frame of the most often sampled stack outside the
  standard library and site-packages, and ``stack``, that stack innermost
  first.

At most one line per ``log_every_s``; the stalls in between are counted in the
next line (``stalls``) and all of them in :attr:`StallTracer.by_where`. The
cost is a call per beat on the loop and a thread waking every ``poll_s``
that, outside stalls, only reads a float.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

import structlog

from csms.monitoring import metrics

log = structlog.get_logger(__name__)

BEAT_S = 0.02
POLL_S = 0.02  # 50 wake-ups a second; a 100 ms stall is sampled about five times
MAX_SAMPLES = 64  # per stall; the thread keeps sampling past it only to count
STACK_DEPTH = 40  # frames kept per sample, innermost first
_LIBRARY_PATHS = tuple(
    {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], "<frozen"}
)


class Beats(Protocol):
    """A beat on the loop to listen to (csms.loop_lag.LoopLagMonitor's)."""

    def add_beat_listener(self, listener: Callable[[], None]) -> None: ...

    def remove_beat_listener(self, listener: Callable[[], None]) -> None: ...


def _frame_name(frame: FrameType) -> str:
    code = frame.f_code
    module = frame.f_globals.get("__name__", "?")
    return f"{module}.{code.co_qualname}:{frame.f_lineno}"


def stack_of(frame: FrameType | None, depth: int = STACK_DEPTH) -> tuple[tuple[str, bool], ...]:
    """(name, is_ours) for ``depth`` frames from ``frame`` outwards; ours = not a library."""
    frames: list[tuple[str, bool]] = []
    while frame is not None and len(frames) < depth:
        path = frame.f_code.co_filename
        ours = not path.startswith(_LIBRARY_PATHS) and path != __file__  # not the GC callback
        frames.append((_frame_name(frame), ours))
        frame = frame.f_back
    return tuple(frames)


class StallTracer:
    """Samples the loop thread's stack while the loop is stalled; see the module docstring."""

    def __init__(
        self,
        threshold_s: float,
        *,
        beat_s: float = BEAT_S,
        poll_s: float = POLL_S,
        log_every_s: float = 1.0,
    ) -> None:
        self.threshold_s = threshold_s
        self.beat_s = beat_s
        self.poll_s = poll_s
        self.log_every_s = log_every_s
        self.by_where: collections.Counter[str] = collections.Counter()  # stalls per place
        self.by_kind: collections.Counter[str] = collections.Counter()  # gc, busy, off-cpu
        self.stalls = 0
        # (monotonic time, the loop thread's CPU time) of the last beat, replaced as a whole
        self._beat = (time.monotonic(), time.thread_time())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None  # the beat of its own
        self._beats: Beats | None = None  # or the beat it listens to
        self._loop_thread = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gc_started = self._gc_started_cpu = 0.0
        # (ended, seconds, CPU seconds, generation, objects freed) of recent collections
        self._gc_pauses: collections.deque[tuple[float, float, float, int, int]]
        self._gc_pauses = collections.deque(maxlen=256)
        # (generation, seconds, CPU seconds) of collections the loop has not counted yet
        self._gc_uncounted: collections.deque[tuple[int, float, float]]
        self._gc_uncounted = collections.deque(maxlen=1024)
        self._last_log = 0.0
        self._unlogged = 0

    # -- the loop's side ---------------------------------------------------------------

    def start(self, beats: Beats | None = None) -> None:
        """Start watching from a thread; the beat is ``beats``' (whose interval must be
        ``beat_s``), else a timer of its own on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if beats is None:
            self._tick()
        else:
            self._mark()
            beats.add_beat_listener(self._mark)
            self._beats = beats
        gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._watch, name="loop-stall-tracer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._beats is not None:
            self._beats.remove_beat_listener(self._mark)
            self._beats = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _mark(self) -> None:
        # CPU time read on the loop thread itself: the watchdog cannot read it at the
        # start of a stall that holds the GIL (a garbage collection, a C call). Also
        # counts the collections _on_gc left: here no metric call is under way.
        self._beat = (time.monotonic(), time.thread_time())
        while self._gc_uncounted:
            generation, pause, gc_cpu = self._gc_uncounted.popleft()
            metrics.GC_PAUSE.labels(str(generation)).observe(pause)
            metrics.GC_CPU.labels(str(generation)).inc(gc_cpu)

    def _tick(self) -> None:
        self._mark()
        assert self._loop is not None
        self._handle = self._loop.call_later(self.beat_s, self._tick)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._loop_thread:
            return
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            self._gc_started, self._gc_started_cpu = now, cpu
            return
        pause = now - self._gc_started
        generation = int(info.get("generation", -1))
        gc_cpu = cpu - self._gc_started_cpu
        # No metric call here: the metrics are counted at the loop's next beat (_mark).
        # A collection can start while this thread is inside prometheus_client, and in
        # multiprocess mode (--workers N) every value shares one non-reentrant lock:
        # a metric call from here waited on its own thread's lock, and the worker hung.
        self._gc_uncounted.append((generation, pause, gc_cpu))
        freed = int(info.get("collected", 0))
        self._gc_pauses.append((time.monotonic(), pause, gc_cpu, generation, freed))

    # -- the watchdog thread -----------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            beat = self._beat
            if time.monotonic() - beat[0] - self.beat_s < self.threshold_s:
                continue
            samples: collections.Counter[tuple[tuple[str, bool], ...]] = collections.Counter()
            while self._beat is beat and not self._stop.is_set():
                if sum(samples.values()) < MAX_SAMPLES:
                    frame = sys._current_frames().get(self._loop_thread)
                    samples[stack_of(frame)] += 1
                self._stop.wait(self.poll_s)
            if self._stop.is_set():
                return
            after = self._beat
            self.report(after[0] - beat[0] - self.beat_s, after[1] - beat[1], beat[0], samples)

    def report(
        self,
        lag_s: float,
        cpu_s: float,
        started: float,
        samples: collections.Counter[tuple[tuple[str, bool], ...]],
    ) -> None:
        """Count one stall of ``lag_s`` that began after ``started``, log it if due."""
        collections_in = [c for c in list(self._gc_pauses) if c[0] >= started]
        gc_s = sum(c[1] for c in collections_in)
        gc_cpu_s = sum(c[2] for c in collections_in)
        generation = max((c[3] for c in collections_in), default=None)
        stack = samples.most_common(1)[0][0] if samples else ()
        # What the loop thread did with the stall: computed (in the collector or not) or
        # did not run. A collection counts as the cause when its CPU alone is most of
        # what the thread did, or would alone have been half a stall.
        if cpu_s >= lag_s / 2:
            kind = "gc" if gc_cpu_s >= cpu_s / 2 else "busy"
        else:
            kind = "gc" if gc_cpu_s >= self.threshold_s / 2 else "off-cpu"
        if kind == "gc":  # the sampled stack is only where the collection ended
            where = f"gc (generation {generation})"
        else:
            where = next((name for name, ours in stack if ours), stack[0][0] if stack else "?")
        self.stalls += 1
        self.by_where[where] += 1
        self.by_kind[kind] += 1
        metrics.EVENT_LOOP_STALLS.labels(kind).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log < self.log_every_s:
            return
        log.warning(
            "loop.stall",
            kind=kind,
            lag_ms=round(lag_s * 1000, 1),
            cpu_ms=round(cpu_s * 1000, 1),
            gc_ms=round(gc_s * 1000, 1),
            gc_cpu_ms=round(gc_cpu_s * 1000, 1),
            gc_generation=generation,
            gc_freed=sum(c[4] for c in collections_in),
            where=where,
            stack=" < ".join(name for name, _ in stack),
            samples=sum(samples.values()),
            share=round(samples[stack] / max(1, sum(samples.values())), 2),
            stalls=self._unlogged,
        )
        self._last_log = now
        self._unlogged = 0
