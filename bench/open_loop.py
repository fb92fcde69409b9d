"""Open-loop load, the pure part: when calls are due, when they go out, what their latency is.

An open-loop generator decides *when* each call is due from a schedule, not from
the previous answer: a server that stalls for 300 ms cannot slow the arrivals
down and so hide the stall (coordinated omission). OCPP allows one outstanding
call per charger, so a call that falls due while the previous one is unanswered
waits for that answer, and its latency still counts from its scheduled time:
the wait is what a charger whose server stalls would see.

Everything here is a pure function of its arguments (times in seconds), so the
generator (bench.load_client) and the tests use the same rules.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Arrivals = Literal["poisson", "even"]


def arrival_times(
    rate: float, start: float, end: float, rng: random.Random, arrivals: Arrivals = "poisson"
) -> Iterator[float]:
    """Due times of one charger's calls in ``[start, end)`` at ``rate`` calls/s.

    Poisson: exponential gaps (independent chargers add up to a Poisson fleet).
    Even: one call every ``1/rate`` s from a random phase in the first period, so
    a fleet's chargers do not all fire together.
    """
    if rate <= 0:
        return
    if arrivals == "even":
        t = start + rng.uniform(0.0, 1.0 / rate)
        k = 0
        while (due := t + k / rate) < end:
            yield due
            k += 1
        return
    t = start + rng.expovariate(rate)
    while t < end:
        yield t
        t += rng.expovariate(rate)


def send_time(scheduled: float, previous_answered: float) -> float:
    """When a call due at ``scheduled`` can go out: not before the previous answer."""
    return max(scheduled, previous_answered)


def call_latency(scheduled: float, answered: float) -> float:
    """A call's latency, from when it was due (not when it could be sent) to its answer."""
    return answered - scheduled


def replay(schedule: Sequence[float], service_times: Sequence[float]) -> list[float]:
    """Latencies of one charger's calls, given how long the server takes to answer each.

    ``service_times[i]`` is the time from sending call i to its answer. A call is
    sent at :func:`send_time`, so a slow answer delays the calls due meanwhile,
    and each latency is :func:`call_latency` from its own due time.
    """
    latencies: list[float] = []
    answered = -math.inf
    for scheduled, service in zip(schedule, service_times, strict=True):
        answered = send_time(scheduled, answered) + service
        latencies.append(call_latency(scheduled, answered))
    return latencies


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending sequence; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, latencies: Iterable[float]) -> LatencySummary:
        ordered = sorted(latencies)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else math.nan,
        )

    def text(self) -> str:
        """``p50 4.1  p95 9.0  p99 15.2  max 40.3 ms``."""
        return (
            f"p50 {_ms(self.p50)}  p95 {_ms(self.p95)}  p99 {_ms(self.p99)}  max {_ms(self.max)} ms"
        )


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"
