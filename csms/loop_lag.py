"""Event-loop lag: how late a timer on the loop fires.

Everything a CSMS process does for its chargers runs on one asyncio loop. A
callback that holds the loop (a scan over every charger, a large JSON
encoding, a blocking call) delays every other charger's answer by as long as
it runs; that shows up as tail latency long before it shows up as CPU. The
:class:`LoopLagMonitor` sets a timer ``interval`` seconds ahead, again and again
(a ``call_later`` chain: the loop's beat), and measures how much later than due
each one fired:

* every measurement goes into the ``csms_event_loop_lag_seconds`` histogram;
* ``csms_event_loop_lag_max_seconds`` is the largest lag of the last 60 s
  (a sliding window of the maxima, kept in a monotonic queue);
* a lag at or above ``warn_s`` logs ``loop.lag`` (warning), at most once per
  ``log_every_s`` seconds, with the largest lag and the number of stalls
  since the previous line, so a process stalled over and over does not flood
  its own log (which would stall it further).

The stall tracer (csms/loop_stalls.py) needs a beat too, to see the loop
overdue: it listens to this one (:meth:`LoopLagMonitor.add_beat_listener`)
rather than keep a timer of its own, so the loop serves one timer for both.

Every CSMS process (each worker of ``--workers``) runs its own monitor: the
metrics are per process, like the loop.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import structlog

from csms.monitoring import metrics

log = structlog.get_logger(__name__)

INTERVAL_S = 0.05  # 20 wake-ups a second: negligible work, a stall of 50 ms is seen
WINDOW_S = 60.0  # csms_event_loop_lag_max_seconds covers this many seconds
LOG_EVERY_S = 10.0  # at most one loop.lag line per this many seconds


class LoopLagMonitor:
    """Measures the lag of the running loop; see the module docstring."""

    def __init__(
        self,
        warn_s: float,
        *,
        interval: float = INTERVAL_S,
        window_s: float = WINDOW_S,
        log_every_s: float = LOG_EVERY_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.warn_s = warn_s
        self.interval = interval
        self.window_s = window_s
        self.log_every_s = log_every_s
        self._clock = clock
        # (when, lag) with lags strictly decreasing: the head is the window's maximum.
        self._maxima: collections.deque[tuple[float, float]] = collections.deque()
        self._last_log: float | None = None
        self._stalls_unlogged = 0  # lags past warn_s since the last loop.lag line
        self._worst_unlogged = 0.0
        self._listeners: list[Callable[[], None]] = []
        self.measurements = 0

    @property
    def max_lag(self) -> float:
        """The largest lag measured in the last ``window_s`` seconds (0 if none)."""
        return self._maxima[0][1] if self._maxima else 0.0

    def add_beat_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on the loop at every beat (every ``interval``, when it fires)."""
        self._listeners.append(listener)

    def remove_beat_listener(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def run(self) -> None:
        """Beat and measure until cancelled."""
        loop = asyncio.get_running_loop()
        clock = self._clock or loop.time
        handle: asyncio.TimerHandle | None = None

        def beat(due: float) -> None:
            nonlocal handle
            now = clock()
            # The next beat first: a listener that raises stops neither beat nor measurement.
            handle = loop.call_later(self.interval, beat, now + self.interval)
            self.observe(max(0.0, now - due), now)
            for listener in tuple(self._listeners):
                listener()

        handle = loop.call_later(self.interval, beat, clock() + self.interval)
        try:
            await asyncio.Event().wait()  # until cancelled: the beat runs on timers
        finally:
            handle.cancel()

    def observe(self, lag: float, now: float) -> None:
        """Record one measurement of ``lag`` seconds, taken at ``now`` (the loop's clock)."""
        self.measurements += 1
        metrics.EVENT_LOOP_LAG.observe(lag)
        maxima = self._maxima
        while maxima and maxima[-1][1] <= lag:
            maxima.pop()
        maxima.append((now, lag))
        while maxima[0][0] < now - self.window_s:
            maxima.popleft()
        metrics.EVENT_LOOP_LAG_MAX.set(maxima[0][1])
        if lag >= self.warn_s:
            self._stalls_unlogged += 1
            self._worst_unlogged = max(self._worst_unlogged, lag)
        if self._stalls_unlogged and (
            self._last_log is None or now - self._last_log >= self.log_every_s
        ):
            log.warning(
                "loop.lag",
                lag_ms=round(self._worst_unlogged * 1000, 1),
                stalls=self._stalls_unlogged,
                threshold_ms=round(self.warn_s * 1000, 1),
                max_60s_ms=round(self.max_lag * 1000, 1),
            )
            self._last_log = now
            self._stalls_unlogged = 0
            self._worst_unlogged = 0.0
