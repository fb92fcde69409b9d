"""The queries every node runs several times a second stay off a full scan of ``events``.

The events table holds days of a fleet's messages (millions of rows). A query of
the event feed that Postgres plans as a sequential scan costs that table's size
on every read -- 92 ms at 300,000 rows for the bus's poll before this was
checked -- so each is EXPLAINed here against a table large enough for the
planner to prefer an index whenever one is usable.
"""

from __future__ import annotations

import asyncpg
import pytest

from csms.cluster import feed
from csms.monitoring import rule_inputs
from tests.query_plans import Explaining, scans

pytestmark = pytest.mark.timeout(120)

ROWS = 60_000


@pytest.fixture
async def filled(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    await database_conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
        SELECT gen_random_uuid(),
               CASE WHEN g % 50 = 0 THEN 'charging_limit_set' ELSE 'meter_sampled' END,
               'cp' || (g % 1000), now(), '{}'::jsonb
        FROM generate_series(1, $1) AS g
        """,
        ROWS,
    )
    await database_conn.execute("ANALYZE events")
    return database_conn


async def test_the_bus_poll_reads_the_index_not_the_table(filled: asyncpg.Connection) -> None:
    explaining = Explaining(filled)
    newest = await feed.tail(filled)
    await feed.read_after(explaining, newest, 50)  # type: ignore[arg-type]
    await feed.tail(explaining)  # type: ignore[arg-type]
    for plan in explaining.plans:
        assert ("Seq Scan", "events") not in scans(plan), plan


async def test_the_alert_engines_profile_feed_reads_an_index(filled: asyncpg.Connection) -> None:
    explaining = Explaining(filled)
    newest = await feed.tail(filled)
    await rule_inputs.charging_limits_after(explaining, newest)  # type: ignore[arg-type]
    (plan,) = explaining.plans
    assert ("Seq Scan", "events") not in scans(plan), plan
    assert ("Bitmap Heap Scan", "events") not in scans(plan), plan
