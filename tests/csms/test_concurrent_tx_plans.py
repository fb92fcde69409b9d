"""The ConcurrentTx check (every Authorize and transaction start) reads the token's open
sessions, not every session the token ever had nor every open session. docs/database.md.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench.history import fill_chargers, fill_sessions
from csms.storage import concurrency
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def sessions(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 sessions of 30 days by 500 tokens (200 each), 1,000 open."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 100_000)
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


async def test_the_check_reads_the_tokens_open_sessions_only(
    sessions: asyncpg.Connection,
) -> None:
    token = await sessions.fetchval("SELECT id_token FROM sessions WHERE status = 'active' LIMIT 1")
    explaining = Explaining(sessions, analyze=True)
    found = await concurrency.in_another_session(
        explaining,  # type: ignore[arg-type]
        token,
        "elsewhere",
        None,
        None,
        12.0,
    )
    assert found is True  # the token's open session at another charger
    assert full_scans(explaining.plans, ["sessions"]) == []
    # Its 2 open sessions; before: its 200 sessions of the month and the 1,000 open ones.
    assert rows_read(explaining.plans, ["sessions"]) < 20
