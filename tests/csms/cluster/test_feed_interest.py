"""Subscriptions that name what they want: the rest is not fetched nor decoded, nor lost.

A worker's services want the events of its own chargers (and a few types); the
other workers' meter values are for nobody there. The feed's guarantees stay:
a subscriber that wants everything (a once-per-cluster feed resuming from its
cursor) still gets every event, in order, even the rows the reader left
unfetched because no subscriber wanted them when they were read.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from csms.bus import EventBus
from csms.cluster import feed
from csms.cluster.feed import FeedRow
from csms.events import ConnectorStatusChanged
from csms.storage import event_log
from tests.csms.cluster.test_feed import buses, pool, start_bus, status, take
from tests.waiting import eventually

__all__ = ["buses", "pool"]  # fixtures

pytestmark = pytest.mark.timeout(120)


async def read_rows(bus: EventBus, count: int) -> Sequence[FeedRow]:
    """The bus's buffered rows once its reader has read ``count`` of them."""

    async def read() -> Sequence[FeedRow]:
        rows = bus.rows_from(0)
        return rows if len(rows) >= count else []

    rows = await eventually(read)
    assert len(rows) == count
    return rows


async def test_a_read_fetches_only_the_payloads_someone_wants(pool: asyncpg.Pool) -> None:
    events = [status("CP-MINE" if n % 2 else "CP-OTHER", n) for n in range(6)]
    for event in events:
        await event_log.append(pool, event)
    mine = feed.held_here({"CP-MINE": object()})
    async with pool.acquire() as conn:
        rows, _ = await feed.read_after(conn, feed.START, 10, payloads_apart=True, wanted=mine)
    assert [r.position for r in rows] == sorted(r.position for r in rows)
    assert [r.fetched for r in rows] == [r.charge_point_id == "CP-MINE" for r in rows]
    assert [r.event for r in rows if r.fetched] == events[1::2]
    with pytest.raises(LookupError):
        _ = rows[0].event  # not fetched: a caller must fetch it first
    async with pool.acquire() as conn:
        assert await feed.fetch_payloads(conn, rows) == 3  # the three left out
    assert [r.event for r in rows] == events


async def test_what_one_subscriber_wants_decides_nothing_for_another(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """A narrow subscriber alone: rows read unfetched; one wanting all still gets all, in order."""
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    narrow = bus.subscribe("narrow", lambda row: row.charge_point_id == "CP-A")
    events = [status("CP-A" if n % 3 == 0 else "CP-B", n) for n in range(9)]
    for event in events:
        await event_log.append(pool, event)
    bus.publish()
    assert await take(narrow, 3) == events[::3]
    buffered = await read_rows(bus, 9)  # the last CP-A row may come before the last reads
    assert sum(not r.fetched for r in buffered) == 6  # CP-B's rows: nobody wanted them
    # A once-per-cluster consumer taking over from a stored cursor wants everything.
    everything = await bus.subscribe_at("engine", feed.START)
    got = await take(everything, 9)
    assert got == events
    assert everything.fetched_late == 6


async def test_an_interest_that_changes_its_mind_gets_what_it_now_wants(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """Judged again when handed out: a stream listener arriving after the read gets its rows."""
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    listening = False

    def wants(row: FeedRow) -> bool:
        return listening

    subscription = bus.subscribe("stream", wants)
    first = status("CP-S", 1)
    await event_log.append(pool, first)
    bus.publish()

    async def read() -> bool:
        return bus.position > bus.started_at

    await eventually(read)
    assert not bus.rows_from(0)[0].fetched
    listening = True
    [got] = await take(subscription, 1)
    assert got == first


async def test_a_node_reads_no_payload_of_another_nodes_rows_nobody_wants(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """Two nodes; each wants its own rows only: each fetches none of the other's payloads."""
    a = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    b = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    seen_a = a.subscribe("a", lambda row: row.local)
    seen_b = b.subscribe("b", lambda row: row.local)
    written: dict[EventBus, list[ConnectorStatusChanged]] = {a: [], b: []}
    for n in range(20):
        node = a if n % 2 else b
        event = status(f"CP-{n}", n)
        # Written here, in another form than the row (decoded, but the node's own). Marked
        # before the commit: publish() after it could come after the other's read.
        node.written_here.mark(event.event_id)
        await event_log.append(pool, event)
        node.publish()
        written[node].append(event)
    assert await take(seen_a, 10) == written[a]
    assert await take(seen_b, 10) == written[b]
    for node in (a, b):
        rows = await read_rows(node, 20)  # the other node's last row may be read later
        assert all(r.fetched == r.local for r in rows)


async def test_a_failed_late_read_is_retried_and_skips_nothing(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """The database away while a wanted row is fetched: the consumer waits, then gets it."""
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    bus.subscribe("narrow", lambda row: False)  # the reader fetches nothing
    events = [status("CP-R", n) for n in range(3)]
    for event in events:
        await event_log.append(pool, event)
    bus.publish()

    async def read() -> bool:
        return bus.position > bus.started_at and len(bus.rows_from(0)) == 3

    await eventually(read)
    real = bus.fetch_payloads
    failures = [ConnectionError("database away")]

    async def failing_once(rows: Sequence[FeedRow]) -> int:
        if failures:
            raise failures.pop()
        return await real(rows)

    bus.fetch_payloads = failing_once  # type: ignore[method-assign]
    everything = await bus.subscribe_at("engine", feed.START)
    assert await take(everything, 3) == events
    assert not failures
