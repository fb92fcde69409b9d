"""Load generator processes: the fleet split over several processes, driven in phases.

One Python process drives roughly a thousand calls/s before its own event loop
lags; past that the generator, not the server, would be measured. So the
fleet is split over ``count`` processes (charger i goes to process i mod
count), each with its own loop and a share of the rate in proportion to its
chargers. The parent tells every process the same absolute phase window
(``time.monotonic()`` is one clock for the whole machine), and merges what
they measured (bench.load_client.PhaseResult).

A generator collects its garbage between phases and freezes its fleets once they
are open: a full collection of two open fleets and a saturated phase's leftovers
held its loop 100-480 ms inside the next measured window, a delay charged to
whichever server was being measured (bench.ingest's half-rate window right
after the saturated one, "generator's loop ran up to 241 ms late").
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.load_client import Fleet, PhaseResult, Window
from bench.open_loop import Arrivals

_CONTEXT = multiprocessing.get_context("spawn")  # fresh interpreters, no inherited loop


@dataclass(frozen=True)
class Phase:
    rate: float  # calls/s of the whole fleet
    warmup: float  # seconds run but not measured
    duration: float  # measured seconds
    arrivals: Arrivals
    seed: int


def _generator_main(pipe: Connection, indices: list[int], timeout: float) -> None:
    asyncio.run(_serve(pipe, indices, timeout))


async def _serve(pipe: Connection, indices: list[int], call_timeout: float) -> None:
    fleets: dict[str, Fleet] = {}  # by target: one fleet per server under test
    while True:
        command, name, arguments = await asyncio.to_thread(pipe.recv)
        if command == "open":
            url, compression, seed = arguments
            fleet = fleets[name] = Fleet(url, indices, call_timeout)
            began = time.monotonic()
            failed = await fleet.open(compression, seed)
            gc.collect()
            gc.freeze()  # the open fleets are never traversed again
            pipe.send((len(fleet.chargers), failed, time.monotonic() - began))
        elif command == "phase":
            rate, window, arrivals, seed = arguments
            gc.collect()  # the last phase's garbage, before this window rather than in it
            pipe.send(await fleets[name].run_phase(rate, window, arrivals, seed))
        elif command == "close":
            if (closing := fleets.pop(name, None)) is not None:
                await closing.close()
            pipe.send(None)
        elif command == "exit":
            return


class Generators:
    """The parent's handle on ``count`` generator processes sharing ``chargers``."""

    def __init__(self, chargers: int, count: int, timeout: float) -> None:
        self.chargers = chargers
        count = max(1, min(count, chargers))
        self._shares = [list(range(g, chargers, count)) for g in range(count)]
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for g, indices in enumerate(self._shares):
            parent, child = _CONTEXT.Pipe()
            process = _CONTEXT.Process(
                target=_generator_main,
                args=(child, indices, timeout),
                name=f"bench-generator-{g + 1}",
                daemon=True,
            )
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)

    @property
    def count(self) -> int:
        return len(self._processes)

    async def _ask_all(self, messages: list[tuple[str, str, Any]]) -> list[Any]:
        for pipe, message in zip(self._pipes, messages, strict=True):
            pipe.send(message)
        return list(await asyncio.gather(*(asyncio.to_thread(p.recv) for p in self._pipes)))

    async def open(
        self, fleet: str, url: str, compression: str | None, seed: int
    ) -> tuple[int, int, float]:
        """Connect and set up every charger of a fleet to ``url``: (open, failed, seconds)."""
        answers = await self._ask_all(
            [("open", fleet, (url, compression, seed * 1000 + g)) for g in range(self.count)]
        )
        return (
            sum(a[0] for a in answers),
            sum(a[1] for a in answers),
            max(a[2] for a in answers),
        )

    @staticmethod
    def window(phase: Phase, lead: float = 0.5) -> Window:
        """The phase's window if it is run now (``lead``: every process has the command)."""
        start = time.monotonic() + lead
        return Window(start, start + phase.warmup, start + phase.warmup + phase.duration)

    async def run(self, fleet: str, phase: Phase, window: Window | None = None) -> PhaseResult:
        """One phase on every generator at once (in ``window``, default from now); merged."""
        window = window or self.window(phase)
        messages: list[tuple[str, str, Any]] = [
            (
                "phase",
                fleet,
                (
                    phase.rate * len(share) / self.chargers,
                    window,
                    phase.arrivals,
                    phase.seed * 1000 + g,
                ),
            )
            for g, share in enumerate(self._shares)
        ]
        merged = PhaseResult()
        for result in await self._ask_all(messages):
            merged.merge(result)
        return merged

    async def close_fleet(self, fleet: str) -> None:
        await self._ask_all([("close", fleet, None)] * self.count)

    def stop(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(("exit", "", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
