"""The clock a service reads time from: the system clock, or a simulated one.

A service that makes time-based decisions (the load manager's settle time,
idle detection, probes, the periodic plan) reads every time through a
:class:`Clock` it is given (:attr:`csms.services.ServiceContext.clock`) instead
of ``time.monotonic()`` / ``datetime.now()``. A production CSMS uses
:data:`SYSTEM_CLOCK`; a benchmark that runs a whole workday in a minute
(``bench.smart_charging_quality --e2e``) passes the simulator's accelerated
:class:`charge_point_sim.clock.SimClock`, so the service's durations are
durations on the same clock as the simulated chargers'.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time, a monotonic reading and sleeping, all on one time scale."""

    def now(self) -> datetime:
        """The current time (timezone-aware UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
