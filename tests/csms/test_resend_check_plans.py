"""Group commit's resend check reads no more of ``events`` as the table grows.

A prepared statement (asyncpg prepares every statement) settles on a generic plan
and keeps it until the table's statistics change. Made while ``events`` was small
-- a fresh database, before its first ANALYZE -- the per-row
``EXISTS (SELECT 1 FROM events ...)`` the multi-row writes used was planned as a
*hashed* subplan: the whole table read on every statement, 17-50 ms of Postgres
per status batch after a saturated minute of bench.ingest. Each test here forces
the generic plan, makes it on a nearly empty table (autovacuum off for it, so no
ANALYZE replans it behind the test's back), adds 20,000 events and runs the write
again: it must still tell the resend from the new message and scan no ``events``
row (csms.storage.event_log.NEW_EVENTS_ONLY: the check is the unique index's).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from csms.events import (
    ChargerBooted,
    ConnectorStatus,
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    Protocol,
)
from csms.storage import batched_writes, setup_writes

pytestmark = pytest.mark.timeout(120)

CHARGERS = ("PLAN-1", "PLAN-2")  # a batch holds at most one message per charger
GROWTH = 20_000

Write = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[list[Any]]]


@pytest.fixture
async def conn(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose prepared statements use their generic plan from the first run."""
    conn = await asyncpg.connect(
        database_dsn, server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    await conn.execute("ALTER TABLE events SET (autovacuum_enabled = false)")
    await conn.executemany(
        "INSERT INTO chargers (charge_point_id, registration) VALUES ($1, 'Accepted')",
        [(cp,) for cp in CHARGERS],
    )
    try:
        yield conn
    finally:
        await conn.close()


def status(n: int) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id=CHARGERS[n % 2],
        occurred_at=datetime(2026, 1, 1, 8, n, tzinfo=UTC),
        evse_id=1,
        connector_id=1,
        status=ConnectorStatus.AVAILABLE if n % 2 else ConnectorStatus.OCCUPIED,
    )


def meter(n: int) -> MeterSampled:
    at = datetime(2026, 1, 1, 8, n, tzinfo=UTC)
    sample = MeterSample(at, "Energy.Active.Import.Register", 1000.0 * n, "Wh")
    return MeterSampled(
        charge_point_id=CHARGERS[n % 2],
        occurred_at=at,
        evse_id=1,
        connector_id=1,
        transaction_id=None,
        samples=(sample,),
    )


def boot(n: int) -> ChargerBooted:
    return ChargerBooted(
        charge_point_id=CHARGERS[n % 2],
        occurred_at=datetime(2026, 1, 1, 8, n, tzinfo=UTC),
        protocol=Protocol.V16,
        vendor="V",
        model="M",
    )


async def stored_statuses(conn: asyncpg.Connection, events: Sequence[Any]) -> list[bool]:
    return await batched_writes.record_statuses(conn, events)


async def stored_meter_values(conn: asyncpg.Connection, events: Sequence[Any]) -> list[bool]:
    return [
        not resend for _, resend in await batched_writes.record_meter_sampled_many(conn, events)
    ]


async def stored_boots(conn: asyncpg.Connection, events: Sequence[Any]) -> list[bool]:
    return [not booted.duplicate for booted in await setup_writes.boot_many(conn, events)]


WRITES: list[tuple[Write, Callable[[int], Any]]] = [
    (stored_statuses, status),
    (stored_meter_values, meter),
    (stored_boots, boot),
]
IDS = ["status", "meter", "boot"]


async def grow_events(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
        SELECT gen_random_uuid(), 'filler', 'FILLER', now(), '{}'::jsonb
        FROM generate_series(1, $1)
        """,
        GROWTH,
    )


async def events_scanned(conn: asyncpg.Connection) -> int:
    """Rows of ``events`` read by sequential scans in this transaction so far."""
    return int(
        await conn.fetchval(
            "SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'events'"
        )
    )


@pytest.mark.parametrize(("write", "make"), WRITES, ids=IDS)
async def test_a_plan_made_on_a_small_table_scans_none_of_it_grown(
    conn: asyncpg.Connection, write: Write, make: Callable[[int], Any]
) -> None:
    first = make(1)
    assert await write(conn, [first]) == [True]  # the generic plan is made (and kept) here
    await grow_events(conn)

    async with conn.transaction():
        assert await write(conn, [make(2), first]) == [True, False]  # new, then a resend
        assert await events_scanned(conn) == 0


async def test_a_boot_of_an_unknown_charger_is_neither_stored_nor_a_resend(
    conn: asyncpg.Connection,
) -> None:
    stranger = ChargerBooted(
        charge_point_id="NOBODY",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        protocol=Protocol.V16,
        vendor="V",
        model="M",
        event_id=uuid.uuid4(),
    )
    [booted] = await setup_writes.boot_many(conn, [stranger])
    assert (booted.registration, booted.duplicate) == (None, False)
    assert await conn.fetchval("SELECT count(*) FROM events WHERE charge_point_id = 'NOBODY'") == 0
