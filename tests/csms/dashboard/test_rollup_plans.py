"""The analytics rollup's round costs the sessions changed lately, not the whole history.

Every node's lease holder asks "which ended sessions changed since their rollup?"
every 30 s. Asked of all sessions, that read every session and every rollup ever
made (a merge join over both tables: 68 ms at 100,000 sessions, growing without
bound); now it reads the sessions changed since the newest rollup (less a margin)
and looks each one's rollup up by key. docs/database.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from bench.history import (
    fill_billed_and_rolled_up,
    fill_chargers,
    fill_meter_samples,
    fill_sessions,
)
from csms.dashboard import rollup
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def rolled_up(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 sessions of 30 days, every ended one rolled up."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 100_000)
    await fill_meter_samples(database_conn, 20_000)
    await fill_billed_and_rolled_up(database_conn, billed=False)
    await database_conn.execute(
        "VACUUM ANALYZE"
    )  # as autovacuum would have: BRIN ranges summarised
    return database_conn


async def test_a_rollup_round_reads_only_sessions_changed_lately(
    rolled_up: asyncpg.Connection,
) -> None:
    explaining = Explaining(
        rolled_up, run=("pg_try_advisory_xact_lock", "max(rolled_up_at)"), analyze=True
    )
    assert await rollup.roll_up(explaining, 500) == 0  # type: ignore[arg-type]
    assert explaining.plans, "the round asked nothing"
    assert full_scans(explaining.plans, ["sessions", "analytics_sessions"]) == []
    # What it reads: about the sessions changed in the last hours (the 1,000 open
    # ones and their neighbours in the table), not the 100,000 of the history.
    assert rows_read(explaining.plans, ["sessions", "analytics_sessions"]) < 10_000


async def test_a_session_changed_after_its_rollup_is_rolled_up_again(
    rolled_up: asyncpg.Connection,
) -> None:
    ended = await rolled_up.fetchval(
        "SELECT id FROM sessions WHERE status = 'ended' ORDER BY id LIMIT 1"
    )
    # A late register reading of a session ended a month ago: a change of now.
    await rolled_up.execute(
        "UPDATE sessions SET meter_stop_wh = 15000, updated_at = now() WHERE id = $1", ended
    )
    assert await rollup.roll_up(rolled_up, 500) == 1
    rolled = await rolled_up.fetchrow(
        "SELECT a.rolled_up_at, s.updated_at FROM analytics_sessions a "
        "JOIN sessions s ON s.id = a.session_id WHERE a.session_id = $1",
        ended,
    )
    assert rolled is not None and rolled["rolled_up_at"] == rolled["updated_at"]
    assert await rollup.roll_up(rolled_up, 500) == 0


async def test_a_rollup_reads_its_sessions_samples_by_index_without_statistics(
    database_conn: asyncpg.Connection,
) -> None:
    """Samples stored since the last ANALYZE (a busy first minute, a burst) have no
    statistics. Joined to the sessions rolled up, the planner counted one matching
    sample and nested a scan of the whole table under the 500 sessions (1.7 s at
    310,000 samples after a saturated minute of bench.ingest); read per session
    through its index, a rollup reads only its sessions' samples."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 5_000)
    await database_conn.execute("ALTER TABLE meter_samples SET (autovacuum_enabled = false)")
    await database_conn.execute("ANALYZE")  # the samples come after: none in the statistics
    await fill_meter_samples(database_conn, 50_000)
    pending = await database_conn.fetch(rollup._PENDING_SQL, 500, datetime.min.replace(tzinfo=UTC))
    ids, changed = [r["id"] for r in pending], [r["updated_at"] for r in pending]
    assert len(ids) == 500
    async with database_conn.transaction():
        plan = await database_conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {rollup._ROLL_UP_SQL}", ids, changed
        )
        assert await database_conn.fetchval("SELECT count(*) FROM analytics_sessions") == 500
        assert await database_conn.fetchval("SELECT count(*) FROM analytics_session_slots") > 0
    plans = [json.loads(plan)[0]["Plan"]]
    assert full_scans(plans, ["meter_samples"]) == []
    # The samples of the 500 sessions (10 each), not the 50,000.
    assert rows_read(plans, ["meter_samples"]) <= 500 * 10
