"""The dashboard's analytics of a recent window read that window's sessions.

A session is in a window when it started before its end and had not ended before
its start. Through ``sessions_started_at`` alone that read every session that began
before the window's end -- the whole history, for a report of the last day.
docs/database.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bench.history import fill_billed_and_rolled_up, fill_chargers, fill_sessions
from csms.dashboard import analytics
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def sessions(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 sessions of 30 days, the ended ones rolled up."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 100_000)
    await fill_billed_and_rolled_up(database_conn, billed=False)
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


async def test_the_last_days_figures_read_the_last_days_sessions(
    sessions: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    edges = [now - timedelta(hours=24 - h) for h in range(0, 25, 6)]
    selection = analytics.Selection(edges=edges, charge_point_ids=None, now=now)
    explaining = Explaining(sessions, run=("SET LOCAL",), analyze=True)
    rows = await analytics.per_bucket(explaining, selection)  # type: ignore[arg-type]
    assert rows
    assert full_scans(explaining.plans, ["sessions"]) == []
    # A day of 30 (about 3,300 sessions) and the 1,000 open ones, not 100,000.
    assert rows_read(explaining.plans, ["sessions"]) < 10_000
