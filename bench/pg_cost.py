"""What Postgres spends per answered call: WAL, rows, index entries, statements, CPU.

    python -m bench.pg_cost [--chargers 1000] [--duration 15] [--rate 0] [--workers 1]
                            [--top 12] [--csms-python PATH] [--env CSMS_X=y ...]

Runs the strict fleet of ``bench.profile_csms`` (half 1.6J, half 2.0.1, the
session mix of bench.ocpp_load) against ``csms`` on a fresh embedded Postgres
loaded with ``pg_stat_statements`` and, over the measured window only, prints
per answered call:

* the CPU of the CSMS and of its Postgres (user + system, all backends);
* the WAL written (bytes, records, full-page images) and the commits;
* per table: rows inserted, updated (of them HOT: no index entry written) and deleted;
* the WAL by relation (pg_walinspect; each record counted against the relation of
  its first block): heap rows against their table, index entries against the index;
* per statement: calls, execution time, rows and WAL bytes (pg_stat_statements).

Without Kafka the outbox relay is off, so the relay's cost is not in the figures;
``--env CSMS_KAFKA_EMBEDDED=true`` runs the CSMS with its embedded broker and relay
(each published event's ``published_at`` update, a second copy of the row in WAL).

``--csms-python`` runs another checkout's csms (its own migrations), so two
versions are compared on the same load: WAL bytes and rows per call do not
depend on how busy the machine is; CPU per call moves by about 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench import load_targets
from bench.load_generators import Generators, Phase
from bench.pg_activity import enable_statement_stats
from bench.profile_csms import SATURATE_PER_CHARGER, SETTLE_S, WARMUP_S
from csms.storage.embedded import start_embedded, stop_embedded

_WAL = "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"
_LSN = "SELECT pg_current_wal_insert_lsn()::text"
# Each WAL record counted once, against the relation of its first block (a heap
# insert against the table, an index insert against the index).
_WAL_BY_RELATION = """
    WITH b AS (
        SELECT pg_filenode_relation(reltablespace, relfilenode) AS rel, relfilenode,
               record_length
        FROM pg_get_wal_block_info($1::text::pg_lsn, $2::text::pg_lsn)
        WHERE block_id = 0 AND reldatabase = (SELECT oid FROM pg_database
                                              WHERE datname = current_database())
    )
    SELECT coalesce(b.rel::regclass::text, b.relfilenode::text) AS relation,
           coalesce(c.relkind::text, '?') AS kind, count(*) AS records,
           sum(b.record_length) AS bytes
    FROM b LEFT JOIN pg_class c ON c.oid = b.rel
    GROUP BY 1, 2 ORDER BY 4 DESC
"""
_DATABASE = """
    SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, sessions
    FROM pg_stat_database WHERE datname = current_database()
"""
_TABLES = "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables"
_NEW_BACKENDS = """
    SELECT coalesce(application_name, '') AS name, count(*) AS n FROM pg_stat_activity
    WHERE backend_start > $1 AND pid <> pg_backend_pid() GROUP BY 1
"""
_EVENT_TYPES = """
    SELECT type, count(*) AS n, avg(pg_column_size(payload)) AS payload,
           avg(coalesce(pg_column_size(context), 0)) AS context
    FROM events WHERE id > $1 GROUP BY 1 ORDER BY 2 DESC
"""
_STATEMENTS = """
    SELECT query, calls, plans, total_exec_time, total_plan_time, rows, wal_bytes, wal_records,
           jit_functions, jit_generation_time + jit_inlining_time + jit_optimization_time
           + jit_emission_time AS jit_time
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time + total_plan_time DESC
"""


@dataclass
class Snapshot:
    wal: dict[str, float]
    lsn: str
    database: dict[str, float]
    tables: dict[str, dict[str, float]]

    @classmethod
    async def take(cls, conn: asyncpg.Connection) -> Snapshot:
        # The statistics a backend reports are read once per transaction: a fresh read.
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        wal = await conn.fetchrow(_WAL)
        lsn = str(await conn.fetchval(_LSN))
        database = await conn.fetchrow(_DATABASE)
        tables = await conn.fetch(_TABLES)
        assert wal is not None and database is not None
        return cls(
            {k: float(v) for k, v in wal.items()},
            lsn,
            {k: float(v) for k, v in database.items()},
            {r["relname"]: {k: float(v) for k, v in r.items() if k != "relname"} for r in tables},
        )


async def prepare(data_dir: Path, settings: list[str]) -> str:
    """An embedded Postgres in ``data_dir`` with pg_stat_statements loaded (and
    ``settings``, ``name=value`` each, to measure one); its csms DSN."""
    measured = [(name, value) for name, value in (s.split("=", 1) for s in settings)]
    more = [
        ("pg_stat_statements.max", "5000"),
        ("pg_stat_statements.track_planning", "on"),
        # The window's WAL is read back by pg_walinspect: a checkpoint inside the
        # window (a run longer than checkpoint_timeout) must not recycle it first.
        ("wal_keep_size", "1GB"),
    ]
    await asyncio.to_thread(enable_statement_stats, data_dir, more + measured)
    dsn = await start_embedded(data_dir)  # with the library loaded; csms adopts this server
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    finally:
        await conn.close()
    return dsn


def report(
    before: Snapshot,
    after: Snapshot,
    calls: int,
    statements: list[Any],
    relations: list[Any],
    top: int,
    query_chars: int = 110,
) -> str:
    per = 1.0 / max(1, calls)
    wal = {k: (after.wal[k] - before.wal[k]) * per for k in after.wal}
    db = {k: (after.database[k] - before.database[k]) * per for k in after.database}
    lines = [
        f"WAL per call: {wal['wal_bytes']:.0f} bytes, {wal['wal_records']:.2f} records, "
        f"{wal['wal_fpi']:.3f} full-page images; transactions per call {db['xact_commit']:.3f} "
        "(read-only ones included), "
        f"rollbacks {db['xact_rollback']:.4f}; connections opened in the window "
        f"{(after.database['sessions'] - before.database['sessions']):.0f}",
        "per call, by table: inserted, updated (of them HOT), deleted",
    ]
    rows = []
    for name, now in after.tables.items():
        then = before.tables.get(name, dict.fromkeys(now, 0.0))
        d = {k: (now[k] - then[k]) * per for k in now}
        if not any(d.values()):
            continue
        rows.append(((d["n_tup_ins"] + d["n_tup_upd"] - d["n_tup_hot_upd"]), name, d))
    for _, name, d in sorted(rows, key=lambda r: (-r[0], r[1])):
        lines.append(
            f"  {name:32s} {d['n_tup_ins']:7.3f} {d['n_tup_upd']:7.3f} ({d['n_tup_hot_upd']:.3f})"
            f" {d['n_tup_del']:7.3f}"
        )
    kinds = {"r": "tables", "i": "indexes", "t": "TOAST"}
    by_kind: dict[str, list[float]] = {}
    for r in relations:
        totals = by_kind.setdefault(kinds.get(r["kind"], "other"), [0.0, 0.0])
        totals[0] += r["records"] * per
        totals[1] += float(r["bytes"]) * per
    lines.append(
        "WAL per call by relation kind (records, bytes): "
        + ", ".join(f"{k} {v[0]:.2f} / {v[1]:.0f}" for k, v in sorted(by_kind.items()))
    )
    lines.append("WAL per call by relation (its records' first block): records, bytes")
    for r in relations[:top]:
        lines.append(
            f"  {r['relation']:40s} {r['records'] * per:7.2f} {float(r['bytes']) * per:8.0f}"
        )
    plan = sum(s["total_plan_time"] for s in statements) * per
    execute = sum(s["total_exec_time"] for s in statements) * per
    jit = sum(s["jit_time"] for s in statements) * per
    lines.append(
        f"all statements per call: {execute:.3f} ms executing, {plan:.3f} ms planning, "
        f"{jit:.3f} ms JIT ({sum(s['jit_functions'] for s in statements) * per:.2f} functions)"
    )
    lines.append(
        "statements by time: calls/call, exec ms/call, plan ms/call, rows/call, WAL bytes/call,"
        " planned (% of its calls: below 100 a cached generic plan ran)"
    )
    for s in statements[:top]:
        text = " ".join(str(s["query"]).split())[:query_chars]
        lines.append(
            f"  {s['calls'] * per:6.3f} {s['total_exec_time'] * per:7.4f}"
            f" {s['total_plan_time'] * per:7.4f} {s['rows'] * per:7.2f}"
            f" {float(s['wal_bytes']) * per:8.0f} {100.0 * s['plans'] / max(1, s['calls']):4.0f}%"
            f"  {text}"
        )
    return "\n".join(lines)


def postgres_cpu(target: load_targets.Target) -> tuple[float, float]:
    """(user, system) CPU seconds so far of the CSMS's Postgres processes (running now)."""
    user = system = 0.0
    for process in target.server_processes():
        with contextlib.suppress(psutil.Error):
            if "postgres" in process.name():
                times = process.cpu_times()
                user, system = user + times.user, system + times.system
    return user, system


async def _perf(
    target: load_targets.Target, output: str, seconds: float
) -> asyncio.subprocess.Process:
    """``perf record`` of the CSMS's Postgres processes (those running now) for ``seconds``."""
    pids = [str(p.pid) for p in target.server_processes() if "postgres" in p.name()]
    return await asyncio.create_subprocess_exec(
        *("perf", "record", "-F", "499", "-g", "-o", output, "-p", ",".join(pids)),
        *("--", "sleep", str(seconds)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def run(args: argparse.Namespace) -> int:
    env = dict(item.split("=", 1) for item in args.env)
    generators = Generators(args.chargers, 1, args.timeout)
    with tempfile.TemporaryDirectory(prefix="csms-pgcost-") as tmp:
        data_dir = Path(tmp)
        dsn = await prepare(data_dir, args.pg_setting)
        target = await load_targets.start_csms(data_dir, args.workers, args.csms_python, env=env)
        stats = await asyncpg.connect(dsn)
        try:
            opened, failed, took = await generators.open("csms", target.url, None, args.seed)
            await asyncio.sleep(SETTLE_S)
            offered = args.rate if args.rate > 0 else args.chargers * SATURATE_PER_CHARGER
            phase = Phase(offered, WARMUP_S, args.duration, "poisson", args.seed)
            window = generators.window(phase)
            running = asyncio.create_task(generators.run("csms", phase, window))
            await asyncio.sleep(max(0.0, window.measured_from - time.monotonic()))
            await stats.execute("SELECT pg_stat_statements_reset()")
            window_start = await stats.fetchval("SELECT now()")
            before, cpu_before = await Snapshot.take(stats), target.cpu_seconds()
            split_before = postgres_cpu(target)
            first_event = await stats.fetchval("SELECT coalesce(max(id), 0) FROM events")
            perf = await _perf(target, args.perf, args.duration) if args.perf else None
            await asyncio.sleep(max(0.0, window.end - time.monotonic()))
            after, cpu_after = await Snapshot.take(stats), target.cpu_seconds()
            split_after = postgres_cpu(target)
            opened_in_window = await stats.fetch(_NEW_BACKENDS, window_start)
            if perf is not None:
                await perf.wait()
            statements = await stats.fetch(_STATEMENTS)
            relations = await stats.fetch(_WAL_BY_RELATION, before.lsn, after.lsn)
            types = await stats.fetch(_EVENT_TYPES, first_event)
            result = await running
            await generators.close_fleet("csms")
        finally:
            await stats.close()
            generators.stop()
            await target.stop()
            stop_embedded(data_dir)
    calls = max(1, result.completed)
    mode = f"open loop at {args.rate:g} calls/s" if args.rate > 0 else "saturated"
    print(
        f"chargers: {opened} ({failed} failed, {took:.1f} s), {mode}, "
        f"--workers {args.workers}; env: {args.env}; Postgres: {args.pg_setting}"
    )
    print(
        f"calls: {result.completed} in {args.duration:g} s = {result.completed / args.duration:.0f}"
        f" calls/s; errors: {result.errors}; timeouts: {result.timeouts}"
    )
    print(
        f"CPU per call: CSMS {(cpu_after[0] - cpu_before[0]) / calls * 1e6:.0f} us, "
        f"Postgres {(cpu_after[1] - cpu_before[1]) / calls * 1e6:.0f} us (user "
        f"{(split_after[0] - split_before[0]) / calls * 1e6:.0f}, system "
        f"{(split_after[1] - split_before[1]) / calls * 1e6:.0f}; backends that ended in the "
        "window are not counted)"
    )
    print(
        report(before, after, calls, list(statements), list(relations), args.top, args.query_chars)
    )
    print("of them still open:", {r["name"]: r["n"] for r in opened_in_window})
    print("events written in the window, per call (mean payload / context bytes):")
    for t in types:
        print(f"  {t['type']:32s} {t['n'] / calls:6.3f}  {t['payload']:6.0f} {t['context']:6.0f}")
    return 0 if result.errors == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total calls/s (0: saturate)")
    parser.add_argument("--workers", type=int, default=1, help="csms --workers N")
    parser.add_argument("--top", type=int, default=12, help="statements listed")
    parser.add_argument(
        "--query-chars", type=int, default=110, help="characters of each statement's text shown"
    )
    parser.add_argument("--env", action="append", default=[], help="CSMS_X=value for the CSMS")
    parser.add_argument("--csms-python", help="run csms with this interpreter (another checkout)")
    parser.add_argument("--timeout", type=float, default=10.0, help="s to wait for an answer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-setting", action="append", default=[], help="name=value for Postgres (ALTER SYSTEM)"
    )
    parser.add_argument("--perf", help="perf record Postgres during the window into FILE")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
