"""The webhooks' minute (catch-up and prune, on every node) reads what it finds.

The catch-up asks, per alert event of the last ten minutes, whether any delivery
exists for it; the prune deletes finished deliveries past their week. Without an
index on the delivery's event or on the age of finished deliveries, each read
every delivery of the week, every minute. docs/database.md.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench.history import fill_events
from csms.monitoring import webhook_store
from csms.monitoring.webhooks import CATCH_UP_WINDOW_S, DELIVERY_RETENTION_S
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def deliveries(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """A subscriber for 8 days and its 50,000 delivered alerts (100 past the week);
    50,000 events, of which 20 alerts of the last minutes not delivered yet."""
    await database_conn.execute(
        "INSERT INTO webhook_subscriptions (id, url, secret, created_at) "
        "VALUES (1, 'http://127.0.0.1:9/hook', 's', now() - interval '8 days')"
    )
    await database_conn.execute(
        """
        INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, body, status,
                                        attempts, next_attempt_at, created_at, delivered_at)
        SELECT 1, gen_random_uuid(), 'alert_opened', '{}', 'delivered', 1, at, at, at
        FROM generate_series(1, 50000) AS g,
             LATERAL (SELECT now() - interval '7 days 1 hour' + g * interval '12 seconds'
                      AS at) AS w
        """
    )
    await fill_events(database_conn, 50_000)
    await database_conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
        SELECT gen_random_uuid(), 'alert_opened', 'hist-' || g, now(), '{}'::jsonb
        FROM generate_series(1, 20) AS g
        """
    )
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


async def test_the_catch_up_and_the_prune_read_only_their_rows(
    deliveries: asyncpg.Connection,
) -> None:
    explaining = Explaining(deliveries, analyze=True)
    missed = await webhook_store.alert_events_not_queued(explaining, CATCH_UP_WINDOW_S)  # type: ignore[arg-type]
    assert len(missed) == 20
    assert full_scans(explaining.plans, ["webhook_deliveries"]) == []
    assert rows_read(explaining.plans, ["webhook_deliveries"]) < 100
    explaining = Explaining(deliveries, analyze=True)
    await webhook_store.prune(explaining, DELIVERY_RETENTION_S)  # type: ignore[arg-type]
    assert full_scans(explaining.plans, ["webhook_deliveries"]) == []
    # The 300 or so past the week, not the 50,000.
    assert rows_read(explaining.plans, ["webhook_deliveries"]) < 1_000
