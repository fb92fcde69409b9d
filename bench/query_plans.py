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

    python -m bench.query_plans --lists [--history-scale 1]

plans the operator's list pages instead (no load): sessions of a token, before an
old date, of an old day or the last minutes, open since an old date; alerts of an
old rule, critical ones. For each, the page (50) through the real list function,
then EXPLAIN (ANALYZE, BUFFERS) of its statement in the generic plan (what a
prepared statement settles on after five runs) and with the values: rows
returned, rows read (index entries and heap rows, filtered ones included) and
buffer pages. Run from another checkout (its copy of this file and its
``python``) it measures that checkout's lists and indexes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import ingest, ingest_open, load_targets
from bench.history import fill_alerts, fill_chargers, fill_history, fill_sessions
from csms.monitoring import alerts_store
from csms.storage import views
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded, with_database
from tests.query_plans import rows_read

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


# -- the operator's list pages ----------------------------------------------------------

_PAGE = 50
Lister = Callable[..., Awaitable[Any]]


def _list_cases(now: datetime) -> list[tuple[str, Lister, dict[str, Any]]]:
    old = now - timedelta(days=25)
    return [
        ("sessions of a token", views.list_sessions, {"id_token": "token7"}),
        ("sessions before an old date", views.list_sessions, {"until": old}),
        ("  its next page", views.list_sessions, {"until": old, "before_id": 10_000}),
        (
            "ended sessions of an old day",
            views.list_sessions,
            {"since": old - timedelta(days=1), "until": old, "status": "ended"},
        ),
        (
            "sessions of an old month",
            views.list_sessions,
            {"since": now - timedelta(days=31), "until": old},
        ),
        (
            "sessions of the last 10 min",
            views.list_sessions,
            {"since": now - timedelta(minutes=10)},
        ),
        (
            "sessions open since an old date",
            views.list_sessions,
            {"until": old, "status": "active"},
        ),
        ("open sessions", views.list_sessions, {"status": "active"}),
        ("ended sessions", views.list_sessions, {"status": "ended"}),
        ("sessions of a charger", views.list_sessions, {"charge_point_id": "hist-7"}),
        ("alerts of an old rule", alerts_store.search, {"rule": "rule-1"}),
        ("critical alerts", alerts_store.search, {"severity": "critical"}),
        ("alerts of a charger", alerts_store.search, {"charge_point_id": "hist-7"}),
        ("unresolved alerts", alerts_store.search, {"status": "unresolved"}),
        ("open alerts", alerts_store.search, {"status": "open"}),
        (
            "resolved alerts of an old rule",
            alerts_store.search,
            {"status": "resolved", "rule": "rule-1"},
        ),
        ("alerts, none given", alerts_store.search, {}),
    ]


class _Recording:
    """An executor that runs each statement and keeps it with its arguments, and whether
    it was prepared for the call (planned with its values, never generic)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...], bool]] = []

    async def fetch(self, query: str, *args: Any, _prepared: bool = False) -> list[Any]:
        self.statements.append((query, args, _prepared))
        return list(await self.conn.fetch(query, *args))

    async def prepare(self, query: str) -> Any:
        recording = self

        class Prepared:
            async def fetch(self, *args: Any) -> list[Any]:
                return await recording.fetch(query, *args, _prepared=True)

        return Prepared()


async def _literal(conn: asyncpg.Connection, value: Any) -> str:
    if value is None or isinstance(value, int | float):
        return "NULL" if value is None else repr(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return str(await conn.fetchval("SELECT quote_literal($1::text)", text))


async def _explain(
    conn: asyncpg.Connection, query: str, args: tuple[Any, ...], generic: bool
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement: its generic plan, or with the values."""
    async with conn.transaction():
        if not generic:
            raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", *args)
        else:
            await conn.execute(f"PREPARE listing AS {query}")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            values = ", ".join([await _literal(conn, a) for a in args])
            raw = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE listing({values})"
            )
            await conn.execute("DEALLOCATE listing")
    return dict(json.loads(raw)[0]["Plan"])


async def list_pages(scale: float) -> None:
    """Rows and pages each list page reads, on a database with history (no load)."""
    data_dir = Path(tempfile.mkdtemp(prefix="csms-list-plans-"))
    dsn = await start_embedded(data_dir)
    try:
        await run_migrations(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            print(f"filling history (scale {scale:g}) ...", flush=True)
            await fill_chargers(conn)
            await fill_sessions(conn, int(100_000 * scale))
            await fill_alerts(conn, int(40_000 * scale))
            await conn.execute("UPDATE alerts SET severity = 'critical' WHERE id % 1000 = 0")
            await conn.execute("VACUUM ANALYZE")
            print(f"\npage of {_PAGE}: rows returned; rows read and pages in the generic plan,")
            print("then with the values (* the statement is prepared for the call: this one)")
            for name, lister, filters in _list_cases(datetime.now(UTC)):
                recording = _Recording(conn)
                found = await lister(recording, limit=_PAGE, **filters)
                cells = []
                for generic in (True, False):
                    plans = [
                        await _explain(conn, q, a, generic) for q, a, _ in recording.statements
                    ]
                    pages = sum(
                        p.get("Shared Hit Blocks", 0) + p.get("Shared Read Blocks", 0)
                        for p in plans
                    )
                    read = rows_read(plans, ["sessions", "alerts"])
                    cells.append(f"{read:8d} {pages:6d}")
                mark = "*" if any(p for _, _, p in recording.statements) else ""
                print(f"  {name:34s} {len(found):4d}  {cells[0]}   {cells[1]}{mark}")
        finally:
            await conn.close()
    finally:
        stop_embedded(data_dir)


def main() -> None:
    parser = ingest._parser()
    parser.add_argument("--history-scale", type=float, default=1.0, help="x the test volumes")
    parser.add_argument("--top", type=int, default=40, help="statements listed")
    parser.add_argument("--lists", action="store_true", help="plan the operator's list pages")
    args = parser.parse_args()
    if args.lists:
        asyncio.run(list_pages(args.history_scale))
        return
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
