"""Which queries cost more as history grows: the ingest benchmark on a database with history.

    python -m bench.query_plans --rate 150 --duration 20 [--history-scale 1]

Runs ``bench.ingest``'s open loop against ``csms`` (1,000 chargers, the realistic
mix), but on an embedded Postgres that first gets the history of a 1,000-charger
network (bench.history: 100,000 sessions with 1 % open, 100,000 events and meter
samples, status and downtime intervals, alerts, cluster commands; times
``--history-scale``) and ``pg_stat_statements``. On a fresh database every table
is small and a full scan costs nothing; here it shows. At the end it prints, from
the start of the CSMS to the end of the run:

- the tables read by sequential scans (scans, rows read);
- the statements by buffer pages read, with calls, pages and rows per call, and
  ``SEQ <table>`` where the statement's generic plan (the one asyncpg's prepared
  statements settle on) scans a history table.

A statement that runs often with many pages per call but few rows is the one to
fix; docs/database.md has the rule and the indexes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg

from bench import ingest, ingest_open, load_targets
from bench.history import fill_history
from csms.storage.embedded import start_embedded, stop_embedded, with_database

HISTORY_TABLES = (
    "events",
    "event_history_default",
    "sessions",
    "meter_samples",
    "connector_status_history",
    "charger_downtime",
    "alerts",
    "cdrs",
    "command_audit",
    "cluster_commands",
    "webhook_deliveries",
    "chargers",
    "connectors",
)

_GENERIC_PLAN_FUNCTION = """
CREATE FUNCTION pg_temp.generic_plan(q text) RETURNS json LANGUAGE plpgsql AS $f$
DECLARE plan json;
BEGIN
    EXECUTE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) ' || q INTO plan;
    RETURN plan;
END $f$
"""
_TABLE_STATS = "SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables"


async def _prepare(data_dir: Path, scale: float, python: str) -> str:
    """Embedded Postgres with pg_stat_statements, migrated (by the CSMS under test:
    ``python``'s checkout) and filled; its csms DSN."""
    dsn = await start_embedded(data_dir)
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await admin.execute("ALTER SYSTEM SET pg_stat_statements.max = 10000")
    finally:
        await admin.close()
    stop_embedded(data_dir)  # restarted below, with the library loaded
    dsn = await start_embedded(data_dir)
    migrate = await asyncio.create_subprocess_exec(
        *(python, "-m", "csms", "migrate", "--database-url", dsn), cwd=data_dir
    )
    if await migrate.wait() != 0:
        raise RuntimeError("csms migrate failed")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        print(f"filling history (scale {scale:g}) ...", flush=True)
        await fill_history(conn, scale)
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()
    return dsn


async def _report(dsn: str, before: dict[str, tuple[int, int]], top: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        print("\nsequential scans since the CSMS started (table: scans, rows read):")
        for row in sorted(await conn.fetch(_TABLE_STATS), key=lambda r: -r["seq_tup_read"]):
            scans0, read0 = before.get(row["relname"], (0, 0))
            scans, read = row["seq_scan"] - scans0, row["seq_tup_read"] - read0
            if scans:
                print(f"  {row['relname']}: {scans} scans, {read} rows read")
        # $1.. of a normalised statement are its parameters; a prepared EXPLAIN would
        # take them for its own, so it is run as dynamic SQL.
        await conn.execute(_GENERIC_PLAN_FUNCTION)
        statements = await conn.fetch(
            """
            SELECT query, calls, rows, shared_blks_hit + shared_blks_read AS pages,
                   total_exec_time
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY shared_blks_hit + shared_blks_read DESC
            LIMIT $1
            """,
            top,
        )
        print(f"\nstatements by pages read (top {top}): calls, pages/call, rows/call, ms/call")
        for s in statements:
            calls = max(s["calls"], 1)
            seq = await _generic_seq_scans(conn, s["query"])
            text = " ".join(s["query"].split())[:150]
            print(
                f"  {s['calls']:7d} {s['pages'] / calls:9.1f} {s['rows'] / calls:8.1f} "
                f"{s['total_exec_time'] / calls:7.2f}  {seq}{text}"
            )
    finally:
        await conn.close()


async def _generic_seq_scans(conn: asyncpg.Connection, query: str) -> str:
    head = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
    if head not in ("SELECT", "WITH", "UPDATE", "DELETE", "INSERT"):
        return ""
    try:
        raw = await conn.fetchval("SELECT pg_temp.generic_plan($1)", query)
    except asyncpg.PostgresError:
        return "(no plan) "
    found = sorted(set(_seq_tables(json.loads(raw)[0]["Plan"])) & set(HISTORY_TABLES))
    return "".join(f"SEQ {t} " for t in found)


def _seq_tables(plan: dict[str, Any]) -> list[str]:
    found = [str(plan["Relation Name"])] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found.extend(_seq_tables(child))
    return found


def main() -> None:
    parser = ingest._parser()
    parser.add_argument("--history-scale", type=float, default=1.0, help="x the test volumes")
    parser.add_argument("--top", type=int, default=40, help="statements listed")
    args = parser.parse_args()
    if args.rates is None:
        raise SystemExit("give --rate (open loop)")
    args.target = "csms"
    args.chargers = args.chargers or 1000
    args.compression = None if args.compression == "none" else args.compression
    start_plain = load_targets.start_csms

    async def start_on_history(
        data_dir: Path, workers: int = 1, python: str | None = None
    ) -> load_targets.Target:
        dsn = await _prepare(data_dir, args.history_scale, python or sys.executable)
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(_TABLE_STATS)
            before = {r["relname"]: (r["seq_scan"], r["seq_tup_read"]) for r in rows}
        finally:
            await conn.close()
        target = await start_plain(data_dir, workers, python)
        stop_csms = target.stop

        async def stop_then_report() -> None:
            # Before ingest_open removes the folder: this process still holds Postgres.
            await stop_csms()
            await _report(dsn, before, args.top)
            stop_embedded(data_dir)

        target.stop = stop_then_report  # type: ignore[method-assign]
        return target

    setattr(ingest_open, "start_csms", start_on_history)  # noqa: B010  (the CSMS it measures)
    sys.exit(asyncio.run(ingest_open.run(args)))


if __name__ == "__main__":
    main()
