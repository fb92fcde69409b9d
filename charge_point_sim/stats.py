"""Counters and latency percentiles shared by every charger of a fleet.

One :class:`Stats` object is shared by all chargers in a run (the simulator
is single-threaded asyncio, so plain counters are safe). :meth:`Stats.summary`
freezes them into a :class:`Summary` that the CLI prints and tests assert on.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); 0.0 for an empty sequence."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    """End-of-run numbers. Latencies are in milliseconds of real time."""

    chargers: int
    sessions_started: int
    sessions_completed: int
    energy_kwh: float
    auth_rejected: dict[str, int]
    """Authorizations the CSMS (or the local list / cache) refused, by status."""
    sessions_deauthorized: int
    """Transactions ended because the CSMS refused the token at their start."""
    sent: dict[str, int]
    received: dict[str, int]
    call_errors: dict[str, int]
    errors: dict[str, int]
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    sim_seconds: float
    real_seconds: float

    @property
    def total_errors(self) -> int:
        """CALLERRORs plus local errors (timeouts, send failures...)."""
        return sum(self.call_errors.values()) + sum(self.errors.values())

    def format(self) -> str:
        """Human-readable multi-line summary."""
        lines = [
            f"chargers: {self.chargers}   simulated: {self.sim_seconds:.0f} s"
            f"   real: {self.real_seconds:.1f} s",
            f"sessions: {self.sessions_started} started, {self.sessions_completed} completed"
            f", {self.sessions_deauthorized} deauthorized",
            f"auth rejected: {sum(self.auth_rejected.values())}"
            + (f" ({_fmt(self.auth_rejected)})" if self.auth_rejected else ""),
            f"energy:   {self.energy_kwh:.3f} kWh",
            f"latency:  p50 {self.latency_ms_p50:.1f} ms  p95 {self.latency_ms_p95:.1f} ms"
            f"  p99 {self.latency_ms_p99:.1f} ms",
            "sent:     " + _fmt(self.sent),
            "received: " + _fmt(self.received),
            "CALLERRORs: " + _fmt(self.call_errors),
            "errors:   " + _fmt(self.errors),
        ]
        return "\n".join(lines)


def _fmt(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


@dataclass
class Stats:
    """Mutable counters updated by chargers while the fleet runs."""

    sent: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    call_errors: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    auth_rejected: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    sessions_started: int = 0
    sessions_completed: int = 0
    sessions_deauthorized: int = 0
    energy_wh: float = 0.0
    chargers_online: int = 0

    def record_call(self, action: str, seconds: float) -> None:
        """A CALL we sent got a CALLRESULT after ``seconds``."""
        self.sent[action] += 1
        self.latencies.append(seconds)

    def record_call_error(self, action: str, code: str) -> None:
        """A CALL we sent got a CALLERROR back."""
        self.sent[action] += 1
        self.call_errors[f"{action}:{code}"] += 1

    def record_error(self, kind: str) -> None:
        """A local failure (timeout, dropped socket during a call, ...)."""
        self.errors[kind] += 1

    def summary(self, chargers: int, sim_seconds: float, real_seconds: float) -> Summary:
        """Freeze the counters into a :class:`Summary`."""
        ms = [x * 1000.0 for x in self.latencies]
        return Summary(
            chargers=chargers,
            sessions_started=self.sessions_started,
            sessions_completed=self.sessions_completed,
            energy_kwh=self.energy_wh / 1000.0,
            auth_rejected=dict(self.auth_rejected),
            sessions_deauthorized=self.sessions_deauthorized,
            sent=dict(self.sent),
            received=dict(self.received),
            call_errors=dict(self.call_errors),
            errors=dict(self.errors),
            latency_ms_p50=percentile(ms, 50),
            latency_ms_p95=percentile(ms, 95),
            latency_ms_p99=percentile(ms, 99),
            sim_seconds=sim_seconds,
            real_seconds=real_seconds,
        )

    def progress_line(self, elapsed_real: float) -> str:
        """One-line progress display."""
        ms = [x * 1000.0 for x in self.latencies[-1000:]]
        return (
            f"[{elapsed_real:6.1f}s] online {self.chargers_online}  sessions "
            f"{self.sessions_started}/{self.sessions_completed}  "
            f"auth rejected {sum(self.auth_rejected.values())}  "
            f"{self.energy_wh / 1000.0:.2f} kWh  msgs {sum(self.sent.values())}  "
            f"errors {sum(self.call_errors.values()) + sum(self.errors.values())}  "
            f"p95 {percentile(ms, 95):.1f} ms"
        )
