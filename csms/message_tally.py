"""The per-message metrics of chargers' CALLs, summed over a loop turn and written once.

Each answered CALL counts into ``csms_ocpp_messages_total{direction="in", action,
outcome}`` and observes ``csms_ocpp_handler_seconds{action}``: three metric values
written per message. Under ``csms --workers N`` each write is prometheus_client's
multiprocess value (a lock, a ``getpid`` system call and a write into a memory-mapped
file: 2-3 us, ~3 % of a worker's CPU at saturation). The answers of one group-commit
batch are all sent in the same turn of the event loop, so here a message only adds to
sums in memory, and the sums are written at the start of the next turn
(``loop.call_soon``): three writes per action and turn instead of per message.

Nothing is lost or estimated: the counts and the histogram's buckets are the same
as message-by-message (its sum too, up to float rounding). What moves is when a
message shows: one loop turn after its answer was sent instead of just after it
in the same turn. A scrape this process serves sees every message answered before the
scrape's request was read (the request is read in a later turn than the write is
queued in); one that another worker serves may miss this worker's messages of the
current turn, as it could always miss a message being answered.
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

from csms.monitoring import metrics


class _Durations:
    """One action's handler seconds of this turn, kept by histogram bucket."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0


class MessageTally:
    """Sums of the per-message metrics, written at the start of the next loop turn."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._durations: dict[str, _Durations] = {}
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        # The histogram's upper bounds, +Inf last: a value belongs to the first bound
        # it does not exceed, as Histogram.observe decides.
        self._bounds: list[float] = list(metrics.HANDLER_SECONDS._upper_bounds)

    def add(self, action: str, outcome: str, seconds: float) -> None:
        """One answered CALL of ``action`` (a bounded label) that took ``seconds``."""
        key = (action, outcome)
        self._counts[key] = self._counts.get(key, 0) + 1
        durations = self._durations.get(action)
        if durations is None:
            durations = self._durations[action] = _Durations(len(self._bounds))
        durations.buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        durations.total += seconds
        loop = asyncio.get_running_loop()
        if self._scheduled_on is not loop:  # a loop that closed before writing: written here
            self._scheduled_on = loop
            loop.call_soon(self.write)

    def write(self) -> None:
        """Write the sums into the metrics (and start new ones)."""
        self._scheduled_on = None
        counts, self._counts = self._counts, {}
        durations, self._durations = self._durations, {}
        for (action, outcome), count in counts.items():
            metrics.bound(metrics.MESSAGES, "in", action, outcome).inc(count)
        for action, summed in durations.items():
            child: Any = metrics.bound(metrics.HANDLER_SECONDS, action)
            child._sum.inc(summed.total)
            for index, count in enumerate(summed.buckets):
                if count:
                    child._buckets[index].inc(count)


TALLY = MessageTally()
