"""The outbox's lag (logged every 30 s on every node) reads what it reports, no more.

Without a relay every event within the retention stays unpublished by design --
millions in production -- and the lag counted them all and took the minimum
recorded_at over all of them on every report. It now counts up to a cap and takes
the oldest as the first in id order. docs/database.md.
"""

from __future__ import annotations

import asyncpg
import pytest

from bench.history import fill_events
from csms.outbox import store
from tests.query_plans import Explaining, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def unpublished(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 events of 30 days, none published (no relay)."""
    await fill_events(database_conn, 100_000, published=False)
    await database_conn.execute("VACUUM ANALYZE events")
    return database_conn


async def test_the_lag_reads_no_more_events_than_its_cap(
    unpublished: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "LAG_COUNT_CAP", 1_000)
    lag = await store.lag(unpublished)
    assert lag.unpublished == 1_000  # at least that many
    assert lag.oldest_age_s is not None and lag.oldest_age_s > 29 * 86400
    explaining = Explaining(unpublished, analyze=True)
    await store.lag(explaining)  # type: ignore[arg-type]
    assert rows_read(explaining.plans, ["events"]) <= 1_001
