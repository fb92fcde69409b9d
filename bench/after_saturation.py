"""What the CSMS does in the seconds after a saturated phase (docs/profiling.md).

    python -m bench.after_saturation [--workers 2] [--chargers 1000] [--saturate 15]
                                     [--after 25] [--after-rate 0] [--py-spy DIR]
                                     [--csms-python PATH]

Starts ``csms`` (fresh embedded Postgres, bench.load_targets) with the strict
fleet of ``bench.ingest``, saturates it for ``--saturate`` seconds, then for
``--after`` seconds prints, once a second, the CPU of the CSMS's processes and
of its Postgres and the statements active in Postgres (``pg_stat_activity``),
while the fleet sends ``--after-rate`` calls/s (0: nothing), and that load's
latency at the end. With ``--py-spy DIR``, every CSMS worker is recorded for
the ``--after`` seconds and the top of each profile is printed.

Work the CSMS left for later (a lease holder's feed catching up, a periodic
rollup of the sessions the burst ended) shows here as CPU without load, or as
more CPU per call than a fresh window at the same rate: in ``bench.ingest
--rates sat,half`` it lands in the half-rate windows that follow, the toy's or
the CSMS's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import asyncpg

from bench.load_generators import Generators, Phase
from bench.load_targets import Target, start_csms
from bench.open_loop import LatencySummary
from bench.profile_csms import _py_spy, top_of_profile, worker_pids

SATURATE_PER_CHARGER = 10.0  # calls/s offered per charger: far beyond any server here

_ACTIVE_SQL = """
SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS query FROM pg_stat_activity
WHERE state = 'active' AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


async def _watch(target: Target, seconds: int) -> None:
    """Print, once a second: CSMS and Postgres CPU (cores) and the active statements."""
    assert target.dsn is not None
    conn = await asyncpg.connect(target.dsn)
    try:
        before = target.cpu_by_process()
        for second in range(1, seconds + 1):
            await asyncio.sleep(1.0)
            now = target.cpu_by_process()
            csms = postgres = 0.0
            for pid, (spent, is_postgres) in now.items():
                used = spent - before.get(pid, (spent, is_postgres))[0]
                if is_postgres:
                    postgres += used
                else:
                    csms += used
            before = now
            active = [row["query"].strip() for row in await conn.fetch(_ACTIVE_SQL)]
            print(f"t+{second:3d} s  csms {csms:4.2f}  postgres {postgres:4.2f}  active {active}")
    finally:
        await conn.close()


def _top_of(output: str) -> str:
    path = Path(output)
    return top_of_profile(path.read_text()) if path.exists() else "(no profile written)"


async def run(args: argparse.Namespace) -> None:
    generators = Generators(args.chargers, 1, args.timeout)
    with tempfile.TemporaryDirectory(prefix="csms-after-") as tmp:
        target = await start_csms(Path(tmp), args.workers, args.csms_python)
        try:
            opened, failed, took = await generators.open("csms", target.url, None, args.seed)
            print(f"{opened} chargers booted in {took:.1f} s ({failed} failed)", flush=True)
            saturate = Phase(args.chargers * SATURATE_PER_CHARGER, 2.0, args.saturate, "poisson", 1)
            result = await generators.run("csms", saturate)
            print(f"saturated: {result.answers / args.saturate:.0f} calls/s answered", flush=True)
            spies = []
            if args.py_spy:
                await asyncio.to_thread(Path(args.py_spy).mkdir, parents=True, exist_ok=True)
                for index, pid in enumerate(worker_pids(target)):
                    output = str(Path(args.py_spy) / f"worker-{index}.txt")
                    spies.append((output, await _py_spy(pid, output, args.after)))
            loaded = None
            if args.after_rate > 0:
                after = Phase(args.after_rate, 0.0, args.after - 1, "poisson", 2)
                loaded = asyncio.create_task(generators.run("csms", after))
            await _watch(target, args.after)
            if loaded is not None:
                phase = await loaded
                latency = LatencySummary.of(v for vs in phase.latencies.values() for v in vs)
                print(f"after, {args.after_rate:g} calls/s: latency {latency.text()}")
            for output, spy in spies:
                await spy.wait()
                print(f"--- {output}\n{await asyncio.to_thread(_top_of, output)}")
        finally:
            generators.stop()
            await target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="csms --workers N")
    parser.add_argument("--saturate", type=float, default=15.0, help="s of the saturated phase")
    parser.add_argument("--after", type=int, default=25, help="s watched after it")
    parser.add_argument("--after-rate", type=float, default=0.0, help="calls/s meanwhile")
    parser.add_argument("--py-spy", dest="py_spy", help="record each worker into DIR")
    parser.add_argument("--csms-python", help="run csms with this interpreter (another checkout)")
    parser.add_argument("--timeout", type=float, default=10.0, help="s to wait for an answer")
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
