"""The charger path's latency while an alert burst is stored: the fleet, with and without one.

``bench.alert_burst`` counts what one burst costs the alert engine; this bench
shows what the chargers feel. It starts ``csms --workers N`` (fresh embedded
Postgres) and the open-loop fleet of ``bench.ingest`` (1,000 chargers, the
realistic mix) at a fixed rate, and runs two phases at that rate: a quiet one,
then one into which ``--burst`` findings are injected (``Faulted`` status events
of as many chargers outside the fleet, committed in ``--chunks`` transactions
spread over the first half of the measured window, as a saturated fleet trips
``short_sessions`` on hundreds of chargers within seconds). Each phase prints
its latency percentiles, the server's CPU per call and the alerts opened in it.

    .venv/bin/python -m bench.alert_burst_fleet [--rate 300] [--burst 1000] [--workers 2]
        [--csms-python OTHER_CHECKOUT/.venv/bin/python]

The rate is absolute, so on a busy machine pick one well below saturation.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.alert_burst import faulted
from bench.ingest_open import Measured, _measure, _phase_line, alerts_opened
from bench.load_generators import Generators, Phase
from bench.load_targets import Target, start_csms
from csms.storage import event_log


async def inject(dsn: str, n: int, chunks: int, over_s: float) -> None:
    """n Faulted events of chargers outside the fleet, in ``chunks`` commits over ``over_s``."""
    conn = await asyncpg.connect(dsn)
    try:
        per = max(1, n // chunks)
        for start in range(0, n, per):
            async with conn.transaction():
                await event_log.append_many(
                    conn, [faulted(f"burst-{i}") for i in range(start, min(n, start + per))]
                )
            await asyncio.sleep(over_s / chunks)
    finally:
        await conn.close()


async def phase(
    args: argparse.Namespace, generators: Generators, target: Target, burst: int, seed: int
) -> None:
    assert target.dsn is not None
    began = datetime.now(UTC)
    injected = None
    if burst:
        delay = args.warmup + args.duration / 10

        async def later() -> None:
            await asyncio.sleep(delay)
            await inject(target.dsn or "", burst, args.chunks, args.duration / 2)

        injected = asyncio.create_task(later())
    run = Phase(args.rate, args.warmup, args.duration, "poisson", seed)
    result, usage, lag = await _measure(generators, target, run, [])
    if injected is not None:
        await injected
    label = f"burst of {burst}" if burst else "no burst"
    m = Measured("csms", str(args.rate), args.rate, result, args.duration, usage["ms_per_call"])
    print(f"-- {label}\n{_phase_line(m, usage, lag, generators.count)}", flush=True)
    opened = await alerts_opened(target.dsn, began, datetime.now(UTC))
    print(f"     alerts opened in the phase: {opened}", flush=True)


async def run(args: argparse.Namespace) -> None:
    generators = Generators(args.chargers, 1, 10.0)
    with tempfile.TemporaryDirectory(prefix="csms-alert-burst-") as tmp:
        target = await start_csms(Path(tmp), args.workers, args.csms_python)
        try:
            opened, failed, took = await generators.open("csms", target.url, None, 1)
            print(
                f"csms --workers {args.workers}: {opened} chargers booted ({failed} failed) in "
                f"{took:.1f} s; {args.rate:g} calls/s, {args.duration:g} s per phase"
            )
            await phase(args, generators, target, 0, 1)
            await phase(args, generators, target, args.burst, 2)
            await generators.close_fleet("csms")
        finally:
            generators.stop()
            await target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="calls/s of the fleet")
    parser.add_argument("--burst", type=int, default=1000, help="findings injected")
    parser.add_argument("--chunks", type=int, default=10, help="transactions of the burst")
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0, help="measured s per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--csms-python", help="run another checkout's csms (its venv)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
