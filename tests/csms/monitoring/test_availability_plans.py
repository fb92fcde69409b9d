"""The availability report reads the status and downtime intervals of its window.

An interval overlaps [start, end) when it began before the end and did not end
before the start. Through the indexes on (charger, start) alone that read every
interval the chargers ever had that began before the window's end -- all their
history, for a report of the last day. docs/database.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bench.history import fill_chargers, fill_downtime, fill_status_history
from csms.monitoring import connectivity_store
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)

TABLES = ["connector_status_history", "charger_downtime"]


@pytest.fixture
async def intervals(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """30 days of status (50,000) and downtime (20,000) intervals of 1,000 chargers."""
    await fill_chargers(database_conn)
    await fill_status_history(database_conn, 50_000)
    await fill_downtime(database_conn, 20_000)
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


async def test_a_days_report_reads_that_days_intervals(intervals: asyncpg.Connection) -> None:
    chargers = [f"hist-{i}" for i in range(1000)]
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    explaining = Explaining(intervals, analyze=True)
    downtime = await connectivity_store.downtime_in(explaining, chargers, start, end)  # type: ignore[arg-type]
    statuses = await connectivity_store.statuses_in(explaining, chargers, start, end)  # type: ignore[arg-type]
    assert downtime and statuses
    assert full_scans(explaining.plans, TABLES) == []
    # A day of 30: about 1/30 of the closed intervals, and the open ones (2,000 + 100).
    assert rows_read(explaining.plans, TABLES) < 10_000
