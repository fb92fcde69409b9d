"""The dashboard's list of unresolved alerts (every few seconds) reads the unresolved ones,
whatever plan the prepared statement ends up with.

An alert acknowledged weeks ago and never resolved sits far below the newest
alerts. With the status test behind a parameter (``$1 = 'unresolved'``), only a
plan made for the values at hand could use the partial index of unresolved
alerts; the generic plan -- which a prepared statement switches to when it is
estimated cheaper -- read every alert. The statement now names the index's
predicate. docs/database.md.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench.history import fill_alerts
from csms.monitoring import alerts_store
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def alerts(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """40,000 alerts of 30 days; the 100 unresolved ones are the oldest."""
    await fill_alerts(database_conn, 40_000)
    await database_conn.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = last_seen WHERE status <> 'resolved'"
    )
    await database_conn.execute(
        """
        UPDATE alerts SET status = 'acknowledged', resolved_at = NULL, resolved_by = NULL,
               acknowledged_at = last_seen
        WHERE id <= 100
        """
    )
    await database_conn.execute("VACUUM ANALYZE alerts")
    return database_conn


async def test_unresolved_alerts_are_read_through_their_partial_index(
    alerts: asyncpg.Connection,
) -> None:
    # As asyncpg's prepared statement may end up after five runs: one plan for any status.
    explaining = Explaining(alerts, analyze=True, generic=True)
    found = await alerts_store.search(explaining, status="unresolved", limit=1000)  # type: ignore[arg-type]
    assert len(found) == 100
    assert full_scans(explaining.plans, ["alerts"]) == []
    assert rows_read(explaining.plans, ["alerts"]) <= 100
    # The other statuses still filter as before.
    assert len(await alerts_store.search(alerts, status="acknowledged", limit=1000)) == 100
    assert len(await alerts_store.search(alerts, status="resolved", limit=10)) == 10
    assert len(await alerts_store.search(alerts, limit=10)) == 10
