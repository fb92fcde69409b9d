"""Connector status intervals: one statement closes the open interval and opens the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from csms.monitoring import connectivity_store as store

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
