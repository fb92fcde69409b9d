"""Profile the CSMS under a strict charger fleet (docs/profiling.md).

    python -m bench.profile_csms [--chargers 200] [--duration 15] [--rate 0] [--workers 1]
                                 [--py-spy profile.txt] [--cprofile csms.prof]
                                 [--env CSMS_X=y ...] [--csms-python PATH] [--statements]
                                 [--pg-set NAME=VALUE ...]

Starts ``csms`` as a subprocess (fresh embedded Postgres in a temporary folder,
bench.load_targets), connects the fleet of ``bench.ingest``'s open loop
(bench.load_client: strict chargers that answer the CSMS's own calls and
check every answer; the session mix of bench.ocpp_load, 79 % meter values),
loads it for ``--duration`` seconds and prints calls/s, latency percentiles,
the CSMS's event-loop lag and its stalls (``loop.stall``: what held the loop),
the CPU per call of the CSMS and of its Postgres -- the figure to compare two
versions by on a shared machine -- and, with ``--py-spy``, the top of a py-spy
profile of the CSMS process during the window (the collapsed stacks are kept
in that file).

``--statements`` preloads ``pg_stat_statements`` in the bench's embedded Postgres
and prints transactions, statements, NOTIFYs and WAL per call (bench.pg_activity),
and the WAL's writes and flushes (fsyncs) per call (``pg_stat_io``);
``--pg-set commit_delay=100`` sets a server setting of that Postgres (with
``--statements``), to weigh one by those counts.
The CSMS probes just-booted chargers over ``CSMS_POST_BOOT_SPREAD_SECONDS`` (30 s):
``--env CSMS_POST_BOOT_SPREAD_SECONDS=1`` keeps those probes out of the window.

``--rate R`` offers R calls/s in total (open loop, one outstanding call per
charger; latency from the due time); 0 (the default) saturates: every charger
is offered far more than it can send, so the latency is that of a loaded
server (from send to answer).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil

from bench.load_client import PhaseResult
from bench.load_generators import Generators, Phase
from bench.load_targets import Target, start_csms
from bench.open_loop import LatencySummary
from bench.pg_activity import Snapshot, enable_statement_stats, report, snapshot

SETTLE_S = 2.0  # after every charger set up: the CSMS's post-boot probes run, no load yet
WARMUP_S = 1.0  # run, not measured
SATURATE_PER_CHARGER = 10.0  # calls/s offered per charger by --rate 0: beyond any server here


def _lag_report(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> str:
    """Lag during the window, all workers: mean, measurements over 50/100/250 ms, max."""
    if not after:
        return "n/a"

    def delta(key: str) -> float:
        return sum(v.get(key, 0.0) - before.get(n, {}).get(key, 0.0) for n, v in after.items())

    count = delta("count")
    mean = delta("sum") / max(1.0, count)
    over = [count - delta(f"le={le}") for le in ("0.05", "0.1", "0.25")]
    gauge = max(v.get("max", 0.0) for v in after.values())
    return (
        f"mean {mean * 1000:.1f} ms over {count:.0f} measurements; over 50/100/250 ms: "
        f"{over[0]:.0f}/{over[1]:.0f}/{over[2]:.0f}; max of the last 60 s {gauge * 1000:.0f} ms"
    )


def _log_size(target: Target) -> int:
    return target.log_path.stat().st_size if target.log_path and target.log_path.exists() else 0


def stall_report(log_path: Path | None, start: int = 0, end: int | None = None) -> str:
    """The CSMS's ``loop.stall`` lines (bytes ``start:end`` of its log): count, kinds, where."""
    if log_path is None or not log_path.exists():
        return "no log"
    where: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    lags: list[float] = []
    with log_path.open("rb") as log:
        log.seek(start)
        text = log.read(None if end is None else end - start).decode(errors="replace")
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == "loop.stall":
            where[str(entry.get("where"))] += int(entry.get("stalls", 1))
            kinds[str(entry.get("kind"))] += int(entry.get("stalls", 1))
            lags.append(float(entry.get("lag_ms", 0.0)))
    if not where:
        return "none"
    places = ", ".join(f"{n} x {w}" for w, n in where.most_common(5))
    kind = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
    return f"{sum(where.values())} ({kind}; worst {max(lags):.0f} ms): {places}"


async def wal_io(dsn: str) -> tuple[float, float]:
    """The WAL's writes and fsyncs so far (PostgreSQL 16+ ``pg_stat_io``; NaN without)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT sum(writes)::float8 AS writes, sum(fsyncs)::float8 AS fsyncs"
            " FROM pg_stat_io WHERE object = 'wal'"
        )
    except asyncpg.PostgresError:
        return float("nan"), float("nan")
    finally:
        await conn.close()
    if row is None or row["writes"] is None:
        return float("nan"), float("nan")
    return float(row["writes"]), float(row["fsyncs"] or 0.0)


def db_report(before: dict[str, float], after: dict[str, float]) -> str:
    """Rows per batched statement and write transactions of the window, busy connections."""
    if not after:
        return "n/a"

    def increase(name: str) -> dict[str, float]:
        return {
            key.split("operation=")[-1].rstrip("}"): value - before.get(key, 0.0)
            for key, value in after.items()
            if key.startswith(name)
        }

    rows, statements = increase("csms_db_batch_size_sum"), increase("csms_db_batch_size_count")
    seconds, writes = increase("csms_db_write_seconds_sum"), increase("csms_db_write_seconds_count")
    batches = ", ".join(
        f"{op} {rows[op] / n:.1f}" for op, n in sorted(statements.items()) if n > 0 and op in rows
    )
    total_writes = sum(writes.values())
    gc_cpu = increase("csms_gc_cpu_seconds_total")
    gc_count = {
        key.split("generation=")[-1].split(",")[0].rstrip("}"): value - before.get(key, 0.0)
        for key, value in after.items()
        if key.startswith("csms_gc_pause_seconds_count")
    }
    busy = next((v for k, v in after.items() if "pool=chargers,state=busy" in k), float("nan"))
    return (
        f"rows per batched statement: {batches or 'none'}; write transactions: "
        f"{total_writes:.0f}, mean {sum(seconds.values()) / max(1.0, total_writes) * 1000:.1f} ms;"
        f" chargers' pool busy at the end: {busy:.0f}\n"
        f"gc: collections by generation {gc_count or 'n/a'}, CPU "
        f"{sum(gc_cpu.values()) * 1000:.0f} ms"
    )


def _print_cprofile(path: str, calls: int) -> None:
    """The cProfile functions with the most own time, and their calls per charger call.

    The counts cover the whole run (start-up and boot included), so per-call
    figures are upper bounds; what matters is which functions run many times a message.
    """
    import pstats

    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(row[1][2] for row in rows) or 1.0
    print(f"cProfile: own time, calls per charger call ({calls} calls measured):")
    for (file, line, name), (_cc, ncalls, tottime, _ct, _callers) in rows[:25]:
        where = f"{os.path.basename(file)}:{line}({name})"
        print(f"  {100 * tottime / total:5.1f}%  {ncalls / calls:8.1f}/call  {where}")


def top_of_profile(collapsed: str, count: int = 20) -> str:
    """Self and inclusive percentages of the frames in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if "loop_stalls.py" in stack or "concurrent/futures/thread.py" in stack:
            continue  # the stall tracer's and the executor's threads, waiting
        n = int(number)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"py-spy: {total} samples; self:"]
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in own.most_common(count)]
    lines.append("inclusive (below the event loop):")
    skip = ("asyncio/", "runpy", "csms/cli.py", "csms/__main__.py", "<module>")
    shown = [(f, n) for f, n in inclusive.most_common() if not any(s in f for s in skip)]
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in shown[:count]]
    return "\n".join(lines)


def worker_pids(target: Target) -> list[int]:
    """The CSMS processes serving chargers: the process itself, or with --workers N its
    workers (lowest pid first)."""
    assert target.process is not None
    if target.workers == 1:
        return [target.process.pid]
    root = target.process.pid
    children = [p for p in target.server_processes() if p.pid != root]
    # not multiprocessing's resource tracker (also a child, and the lowest pid)
    workers = [p for p in children if "python" in p.name() and not _is_helper(p)]
    return sorted(p.pid for p in workers) or [root]


def _a_worker(target: Target) -> int:
    """The CSMS process to profile: the process itself, or with --workers N the first worker."""
    return worker_pids(target)[0]


def _is_helper(process: psutil.Process) -> bool:
    try:
        return any("resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return True


async def _py_spy(
    pid: int, output: str, seconds: float, rate: int = 50
) -> asyncio.subprocess.Process:
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    return await asyncio.create_subprocess_exec(
        *(py_spy, "record", "-f", "raw", "-r", str(rate), "-o", output, "-d", str(int(seconds))),
        *("--pid", str(pid)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _measure(
    args: argparse.Namespace, generators: Generators, target: Target
) -> tuple[PhaseResult, tuple[float, float], str, asyncio.subprocess.Process | None]:
    """One phase; CPU (CSMS, Postgres) and lag taken at the edges of its measured window."""
    offered = args.rate if args.rate > 0 else args.chargers * SATURATE_PER_CHARGER
    phase = Phase(offered, WARMUP_S, args.duration, "poisson", args.seed)
    window = generators.window(phase)
    running = asyncio.create_task(generators.run("csms", phase, window))
    await asyncio.sleep(max(0.0, window.measured_from - time.monotonic()))
    spy = None
    if args.py_spy:
        spy = await _py_spy(_a_worker(target), args.py_spy, args.duration)
    statements_before = await snapshot(target.dsn) if args.statements and target.dsn else None
    wal_before = await wal_io(target.dsn) if statements_before is not None and target.dsn else None
    cpu_before, lag_before = target.cpu_seconds(), await target.loop_lag()
    db_before, log_from = await target.db_figures(), _log_size(target)
    await asyncio.sleep(max(0.0, window.end - time.monotonic()))
    cpu_after, lag_after = target.cpu_seconds(), await target.loop_lag()
    statements_after: Snapshot | None = None
    wal: tuple[float, float] | None = None
    if statements_before is not None and target.dsn:
        statements_after = await snapshot(target.dsn)
        if wal_before is not None:
            after = await wal_io(target.dsn)
            wal = (after[0] - wal_before[0], after[1] - wal_before[1])
    db = db_report(db_before, await target.db_figures())
    await asyncio.sleep(0.5)  # a stall that ended with the window is logged when it ends
    stalls = stall_report(target.log_path, log_from, _log_size(target))
    result = await running
    calls = max(1, result.completed)
    cpu = (
        (cpu_after[0] - cpu_before[0]) / calls * 1e6,
        (cpu_after[1] - cpu_before[1]) / calls * 1e6,
    )
    lag = _lag_report(lag_before, lag_after)
    text = f"{lag}\nloop stalls: {stalls}\ndatabase: {db}"
    if statements_before is not None and statements_after is not None:
        text += "\n" + report(statements_before, statements_after, calls, args.duration)
    if wal is not None:
        text += f"\n  WAL I/O: {wal[0] / calls:.2f} writes, {wal[1] / calls:.2f} fsyncs per call"
    return result, cpu, text, spy


async def run(args: argparse.Namespace) -> int:
    env = dict(item.split("=", 1) for item in args.env)
    profiler = ("-m", "cProfile", "-o", args.cprofile) if args.cprofile else ()
    generators = Generators(args.chargers, 1, args.timeout)
    with tempfile.TemporaryDirectory(prefix="csms-profile-") as tmp:
        if args.statements:
            settings = [("pg_stat_statements.track", "all")]
            for item in args.pg_set:
                name, value = item.split("=", 1)
                settings.append((name, value))
            await asyncio.to_thread(enable_statement_stats, Path(tmp), settings)
        target = await start_csms(
            Path(tmp), args.workers, args.csms_python, env=env, python_args=profiler
        )
        spy = None
        try:
            opened, failed, took = await generators.open("csms", target.url, None, args.seed)
            await asyncio.sleep(SETTLE_S)
            stored_before = await target.stored_samples() or 0
            result, (csms_us, pg_us), lag, spy = await _measure(args, generators, target)
            await generators.close_fleet("csms")
            stored = (await target.stored_samples() or 0) - stored_before
            mode = f"open loop at {args.rate:g} calls/s" if args.rate > 0 else "saturated"
            print(
                f"chargers: {opened} (half 1.6J, half 2.0.1; {failed} failed to set up, "
                f"{took:.1f} s), {mode}, csms --workers {args.workers}; env: {args.env}"
            )
            print(
                f"calls: {result.completed} in {args.duration:g}s = "
                f"{result.completed / args.duration:.0f} calls/s; errors: {result.errors}; "
                f"timeouts: {result.timeouts}; CSMS calls answered: {result.server_calls}"
            )
            if args.rate > 0:
                latencies = (v for values in result.latencies.values() for v in values)
                print(f"latency ms (from the due time): {LatencySummary.of(latencies).text()}")
            else:
                print(f"latency (send to answer): {LatencySummary.of(result.service_times).text()}")
            print(f"event-loop lag: {lag}")
            print(f"CPU per call: CSMS {csms_us:.0f} us, Postgres {pg_us:.0f} us")
            print(
                f"samples answered: {result.samples_answered}; stored: {stored}"
                f" (+ at most {result.samples_unsure} of calls that timed out)"
            )
            if spy is not None:
                await asyncio.wait_for(spy.wait(), 60)
                collapsed = await asyncio.to_thread(Path(args.py_spy).read_text)
                print(top_of_profile(collapsed))
        finally:
            generators.stop()
            if spy is not None and spy.returncode is None:
                spy.terminate()
            await target.stop()
        if args.cprofile:
            _print_cprofile(args.cprofile, max(1, result.completed))
    return 0 if stored >= result.samples_answered else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total calls/s (0: saturate)")
    parser.add_argument("--workers", type=int, default=1, help="csms --workers N")
    parser.add_argument("--py-spy", dest="py_spy", help="record the CSMS with py-spy into FILE")
    parser.add_argument("--cprofile", help="run the CSMS under cProfile, written to FILE at stop")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="pg_stat_statements on: transactions, statements and NOTIFYs per call",
    )
    parser.add_argument("--env", action="append", default=[], help="CSMS_X=value for the CSMS")
    parser.add_argument(
        "--pg-set",
        action="append",
        default=[],
        help="NAME=VALUE: a setting of the bench's Postgres (needs --statements)",
    )
    parser.add_argument("--csms-python", help="run csms with this interpreter (another checkout)")
    parser.add_argument("--timeout", type=float, default=10.0, help="s to wait for an answer")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.pg_set and not args.statements:
        parser.error("--pg-set needs --statements (the bench prepares its Postgres then)")
    if any("=" not in item for item in args.pg_set):
        parser.error("--pg-set takes NAME=VALUE")
    if args.cprofile:  # the CSMS runs in a temporary folder
        args.cprofile = os.path.abspath(args.cprofile)
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
