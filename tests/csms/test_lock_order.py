"""Multi-row writes of one table lock its rows in one order, so they never deadlock.

A set-up batch (connect, boot, disconnect of many chargers, several kinds in one
transaction) and the last-seen flush both update many ``chargers`` rows in one
statement. Locked in the order the input happened to come in, two of them on
overlapping chargers could each hold a row the other waits for, and Postgres
broke the tie by failing one (``group_commit.batch_failed`` in 10,000-charger
storms). Here both run concurrently on overlapping chargers in deliberately
opposite orders, many times, against a real Postgres: no deadlock, and every
write lands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from csms.central import CentralSystem
from csms.config import Settings
from csms.events import ChargerBooted, ChargerConnected, ChargerDisconnected, Protocol
from csms.storage import chargers, setup_writes
from tests.waiting import eventually

CHARGERS = [f"LOCK-{n:03d}" for n in range(60)]
ROUNDS = 40


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_dsn, min_size=4, max_size=4)
    assert pool is not None
    await pool.executemany(
        "INSERT INTO chargers (charge_point_id, registration) VALUES ($1, 'Accepted')",
        [(cp,) for cp in CHARGERS],
    )
    yield pool
    await pool.close()


async def column(pool: asyncpg.Pool, name: str, where: str = "", *args: Any) -> dict[str, Any]:
    """One column of the chargers table by charger."""
    rows = await pool.fetch(f"SELECT charge_point_id, {name} FROM chargers {where}", *args)
    return {r["charge_point_id"]: r[name] for r in rows}


def _connection(cp: str) -> setup_writes.Connection:
    event = ChargerConnected(
        charge_point_id=cp, occurred_at=datetime.now(UTC), protocol=Protocol.V16
    )
    return setup_writes.Connection(event, "node-a")


def _boot(cp: str) -> ChargerBooted:
    return ChargerBooted(
        charge_point_id=cp,
        occurred_at=datetime.now(UTC),
        protocol=Protocol.V16,
        vendor="V",
        model="M",
        reason="PowerUp",
    )


async def _setup_batch(pool: asyncpg.Pool, order: list[str]) -> None:
    """A set-up batch of several kinds: connects of one half, then boots of the other."""
    half = len(order) // 2
    async with pool.acquire() as conn, conn.transaction():
        await setup_writes.connect_many(conn, [_connection(cp) for cp in order[:half]])
        await setup_writes.boot_many(conn, [_boot(cp) for cp in order[half:]])


async def _disconnects(pool: asyncpg.Pool, order: list[str]) -> None:
    generations = await column(
        pool, "connection_generation", "WHERE charge_point_id = ANY($1::text[])", order
    )
    items = [
        setup_writes.Disconnection(
            ChargerDisconnected(charge_point_id=cp, occurred_at=datetime.now(UTC)),
            generations[cp] or 0,
        )
        for cp in order
    ]
    async with pool.acquire() as conn:
        await setup_writes.disconnect_many(conn, items)


async def _single_statement(pool: asyncpg.Pool, order: list[str], round_: int) -> None:
    """A batch of one kind (one statement, no transaction of its own), in ``order``."""
    if round_ % 3 == 0:
        await _disconnects(pool, order)
        return
    async with pool.acquire() as conn:
        if round_ % 3 == 1:
            await setup_writes.connect_many(conn, [_connection(cp) for cp in order])
        else:
            await setup_writes.boot_many(conn, [_boot(cp) for cp in order])


async def test_setup_batches_and_the_last_seen_flush_never_deadlock(pool: asyncpg.Pool) -> None:
    shuffle = random.Random(7)
    base = datetime.now(UTC)
    latest: dict[str, datetime] = {}  # the newest time each charger was flushed with
    for round_ in range(ROUNDS):
        ascending = sorted(shuffle.sample(CHARGERS, 40))
        at = base + timedelta(seconds=round_)
        seen = {cp: at for cp in shuffle.sample(CHARGERS, 40)}
        results = await asyncio.gather(
            _setup_batch(pool, ascending),
            _single_statement(pool, list(reversed(ascending)), round_),
            chargers.touch_last_seen(pool, seen),
            chargers.touch_last_seen(pool, dict(reversed(list(seen.items())))),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"round {round_}: {failures!r}"
        skipped_by_both = set(results[2]) & set(results[3])  # type: ignore[arg-type]
        # What a flush skipped it hands back for the next one (as presence does).
        assert not await chargers.touch_last_seen(pool, {cp: at for cp in skipped_by_both})
        latest.update(seen)
    connected_at = await column(pool, "connected_at", "WHERE connected")
    stored = await column(pool, "last_seen_at")
    for cp, at in latest.items():  # every flushed time was written (or a later connect's)
        assert stored[cp] >= at or stored[cp] == connected_at.get(cp), cp


async def _waiting_for_a_lock(pool: asyncpg.Pool) -> bool:
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(waiting)


async def test_the_flush_skips_a_row_a_set_up_transaction_holds(pool: asyncpg.Pool) -> None:
    """A set-up batch of two kinds locks over two statements; the flush must not wait.

    The batch connects a charger late in key order, then boots one early in key
    order. A flush of both that waited for the first would hold the second: each
    would wait for the other. It skips the held row instead, and the central
    system writes it with its next flush.
    """
    early, late = CHARGERS[0], CHARGERS[-1]
    central = CentralSystem(pool, dataclasses.replace(Settings(), node_id="node-a"))
    async with pool.acquire() as conn, conn.transaction():
        await setup_writes.connect_many(conn, [_connection(late)])
        central.seen(early)
        central.seen(late)
        flush = asyncio.create_task(central.flush_last_seen())
        await eventually(lambda: _done_or_waiting(flush, pool))
        await setup_writes.boot_many(conn, [_boot(early)])
    await flush
    seen = await last_seen(pool)
    await central.flush_last_seen()
    again = await last_seen(pool)
    assert seen[early] is not None and again[early] == seen[early]  # the first flush
    assert again[late] > seen[late]  # the connect's time, then the skipped one's


async def last_seen(pool: asyncpg.Pool) -> dict[str, Any]:
    return await column(pool, "last_seen_at")


async def _done_or_waiting(task: asyncio.Task[None], pool: asyncpg.Pool) -> bool:
    return task.done() or await _waiting_for_a_lock(pool)
