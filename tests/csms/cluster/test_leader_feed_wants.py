"""A once-per-cluster feed that names what it handles, and a wait bounded only when it waits.

The ``monitoring`` feed acts on connects, disconnects, statuses and alerts; the
other rows (meter values, most of the feed) only move its cursor, so the lease
holder neither fetches nor decodes them for it. Its stored cursor still moves
past them, and a node taking the lease over resumes after the last row handled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from csms.bus import EventBus
from csms.cluster import feed
from csms.cluster.leases import LeaseManager
from csms.cluster.singleton import LeaderFeed
from csms.events import Event
from csms.storage import event_log
from tests.csms.cluster.test_feed import buses, pool, start_bus, status, take
from tests.waiting import eventually

__all__ = ["buses", "pool"]  # fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def leases(database_dsn: str) -> AsyncIterator[LeaseManager]:
    manager = LeaseManager(
        database_dsn, "node-a", retry_interval=0.05, check_interval=0.1, check_timeout=2.0
    )
    yield manager
    await manager.stop()


async def test_get_within_times_out_when_no_wanted_row_comes_and_loses_nothing(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    narrow = bus.subscribe("narrow", lambda row: row.charge_point_id == "CP-A")
    others = [status("CP-B", n) for n in range(3)]
    for event in others:
        await event_log.append(pool, event)
    bus.publish()
    await eventually(lambda: _async(bus.position > feed.START), within=30)
    with pytest.raises(TimeoutError):
        await narrow.get(within=0.2)  # only CP-B's rows: nothing for it
    assert narrow.position == bus.position  # it passed them all the same
    wanted = status("CP-A", 3)
    await event_log.append(pool, wanted)
    bus.publish()
    assert await narrow.get(within=30) == wanted
    # An event already there is handed out at once, whatever the bound.
    ready = status("CP-A", 4)
    await event_log.append(pool, ready)
    bus.publish()
    await eventually(lambda: _async(narrow.pending > 0), within=30)
    assert await narrow.get(within=0.0) == ready


async def test_a_leader_feed_handles_what_it_wants_and_stores_its_cursor_past_the_rest(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus], leases: LeaseManager
) -> None:
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    handled: list[Event] = []

    async def handle(event: Event) -> None:
        handled.append(event)

    leader = LeaderFeed(
        "wants-test",
        bus=bus,
        leases=leases,
        pool=pool,
        handle=handle,
        checkpoint_interval=0.1,
        wants=lambda row: row.charge_point_id == "CP-A",
    )
    await leader.start()
    try:
        events = [status("CP-A" if n % 3 == 0 else "CP-B", n) for n in range(9)]
        for event in events:
            await event_log.append(pool, event)
        bus.publish()
        await eventually(lambda: _async(len(handled) == 3), within=30)
        assert handled == events[::3]  # in feed order, only the wanted ones
        # The cursor is stored past the last row, an unwanted one.
        async with pool.acquire() as conn:
            last = await conn.fetchval("SELECT max(id) FROM events WHERE charge_point_id = 'CP-B'")

        async def stored_past_the_last() -> bool:
            async with pool.acquire() as conn:
                cursor = await feed.load_cursor(conn, "wants-test")
            return cursor is not None and cursor[1] >= last

        await eventually(stored_past_the_last, within=30)
        # Nothing handled twice, nothing more: a subscriber wanting all still gets all.
        everything = await bus.subscribe_at("everything", feed.START)
        assert await take(everything, 9) == events
        await asyncio.sleep(0)
        assert handled == events[::3]
    finally:
        await leader.stop()


async def _async(value: bool) -> bool:
    return value
