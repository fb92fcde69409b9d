"""Connector status intervals: one statement closes the open interval and opens the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from csms.events import ConnectorStatus, ConnectorStatusChanged
from csms.monitoring import connectivity_store as store
from csms.monitoring.connectivity import ConnectivityRecorder

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def _intervals(conn: asyncpg.Connection, charge_point_id: str) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT connector_id, status, started_at, ended_at FROM connector_status_history"
        " WHERE charge_point_id = $1 ORDER BY connector_id, started_at, id",
        charge_point_id,
    )
    return [tuple(row) for row in rows]


async def test_status_changes_close_and_open_intervals(database_conn: asyncpg.Connection) -> None:
    conn = database_conn
    await conn.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-H')")
    await store.record_status(conn, "CP-H", 1, 1, "Available", at(0))
    await store.record_status(conn, "CP-H", 1, 1, "Available", at(5))  # no change: nothing
    await store.record_status(conn, "CP-H", 1, 1, "Faulted", at(10))
    await store.record_status(conn, "CP-H", 1, 1, "Occupied", at(8))  # the clock stepped back
    await store.record_status(conn, "CP-H", 1, 2, "Available", at(3))  # another connector
    assert await _intervals(conn, "CP-H") == [
        (1, "Available", at(0), at(10)),
        (1, "Faulted", at(10), at(10)),
        (1, "Occupied", at(10), None),
        (2, "Available", at(3), None),
    ]


async def test_a_status_of_an_unknown_charger_is_not_recorded(
    database_conn: asyncpg.Connection,
) -> None:
    await store.record_status(database_conn, "CP-NOBODY", 1, 1, "Available", at(0))
    assert await _intervals(database_conn, "CP-NOBODY") == []


def changed(connector_id: int, status: ConnectorStatus, minutes: float) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id="CP-H",
        occurred_at=at(minutes),
        evse_id=connector_id,
        connector_id=connector_id,
        status=status,
    )


async def test_the_recorder_writes_statuses_at_its_flush_as_one_by_one_would(
    database_dsn: str,
) -> None:
    """The lease holder's feed applies statuses and flushes them together (one round
    trip, docs/profiling.md): nothing is written before the flush, everything after,
    with the same intervals as the statement run once per status in feed order."""
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=2) as pool:
        await pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-H')")
        recorder = ConnectivityRecorder(pool, presumed_dead_s=60)
        for event in (
            changed(1, ConnectorStatus.AVAILABLE, 0),
            changed(1, ConnectorStatus.AVAILABLE, 5),
            changed(1, ConnectorStatus.FAULTED, 10),
            changed(1, ConnectorStatus.OCCUPIED, 8),  # the clock stepped back
            changed(2, ConnectorStatus.AVAILABLE, 3),
        ):
            await recorder.apply(event)
        async with pool.acquire() as conn:
            assert await _intervals(conn, "CP-H") == []
            await recorder.flush()
            assert await _intervals(conn, "CP-H") == [
                (1, "Available", at(0), at(10)),
                (1, "Faulted", at(10), at(10)),
                (1, "Occupied", at(10), None),
                (2, "Available", at(3), None),
            ]


async def test_a_status_the_database_refuses_fails_alone(database_dsn: str) -> None:
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=2) as pool:
        await pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-H')")
        recorder = ConnectivityRecorder(pool, presumed_dead_s=60)
        await recorder.apply(changed(1, ConnectorStatus.AVAILABLE, 0))
        await recorder.apply(changed(2**40, ConnectorStatus.FAULTED, 1))  # no int4
        await recorder.apply(changed(1, ConnectorStatus.OCCUPIED, 2))
        await recorder.flush()
        async with pool.acquire() as conn:
            assert await _intervals(conn, "CP-H") == [
                (1, "Available", at(0), at(2)),
                (1, "Occupied", at(2), None),
            ]
        await recorder.flush()  # the refused one is not tried again
        async with pool.acquire() as conn:
            assert len(await _intervals(conn, "CP-H")) == 2


async def test_statuses_wait_while_the_database_cannot_be_reached(database_dsn: str) -> None:
    """Unreachable: the flush fails (the feed's cursor stays behind the statuses) and
    the statuses are written, once, when it can be reached again."""
    gone = await asyncpg.create_pool(database_dsn, min_size=1, max_size=1)
    await gone.close()
    recorder = ConnectivityRecorder(gone, presumed_dead_s=60)
    await recorder.apply(changed(1, ConnectorStatus.AVAILABLE, 0))
    await recorder.apply(changed(1, ConnectorStatus.FAULTED, 1))
    with pytest.raises(asyncpg.InterfaceError):
        await recorder.flush()
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=2) as pool:
        await pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-H')")
        recorder.pool = pool
        await recorder.flush()
        await recorder.flush()
        async with pool.acquire() as conn:
            assert await _intervals(conn, "CP-H") == [
                (1, "Available", at(0), at(1)),
                (1, "Faulted", at(1), None),
            ]
