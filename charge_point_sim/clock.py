"""Simulated clock with a time-scale factor.

Tests and demos run many simulated hours in a few real seconds, so every wait
in the simulator goes through :class:`SimClock`. Timestamps sent to the CSMS
are taken from the *simulated* clock: it starts at the real wall-clock time
and then advances ``speed`` simulated seconds per real second. That keeps
energy, power and timestamps mutually consistent in the CSMS database (kWh
divided by the session's duration gives the power the EV really drew). With
``speed=1`` the simulated clock is the real clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """Monotonic simulated clock; ``speed`` simulated seconds per real second."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._start_wall = start if start is not None else datetime.now(UTC)
        self._start_mono = time.monotonic()

    def elapsed(self) -> float:
        """Simulated seconds since the clock was created."""
        return (time.monotonic() - self._start_mono) * self.speed

    def monotonic(self) -> float:
        """Simulated monotonic seconds (:class:`csms.clock.Clock`; same as :meth:`elapsed`)."""
        return self.elapsed()

    def now(self) -> datetime:
        """Current simulated time (timezone-aware UTC)."""
        return self._start_wall + timedelta(seconds=self.elapsed())

    def real_seconds(self, sim_seconds: float) -> float:
        """Convert a simulated duration to real seconds."""
        return max(0.0, sim_seconds) / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep for a simulated duration."""
        await asyncio.sleep(self.real_seconds(sim_seconds))


def iso(ts: datetime) -> str:
    """OCPP timestamp: UTC, millisecond precision, trailing ``Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an OCPP timestamp (accepts ``Z`` and offsets, naive means UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
