"""A page read with its payloads apart gives the same events as one read whole."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from csms.cluster import feed
from csms.cluster.feed import WrittenHere
from csms.storage import event_log
from tests.csms.cluster.test_feed import status


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=4) as made:
        yield made


async def test_payloads_apart_gives_the_same_events_own_rows_not_decoded(
    pool: asyncpg.Pool,
) -> None:
    events = [status("CP-PAGE", n) for n in range(5)]
    for event in events:
        await event_log.append(pool, event)
    written_here = WrittenHere()
    written_here.add(events[1])  # this node stored these two as they are
    written_here.add(events[3])
    async with pool.acquire() as conn:
        whole, _ = await feed.read_after(conn, feed.START, 10)
        apart, _ = await feed.read_after(conn, feed.START, 10, written_here, payloads_apart=True)
    assert [r.position for r in apart] == [r.position for r in whole]
    assert [r.event for r in apart] == [r.event for r in whole] == events
    assert apart[1].event is events[1] and apart[3].event is events[3]  # not decoded
    assert apart[0].event is not events[0]  # decoded from its payload, read by id
    assert written_here.hits == 2


async def test_payloads_apart_with_nothing_written_here(pool: asyncpg.Pool) -> None:
    events = [status("CP-OTHER", n) for n in range(3)]
    for event in events:
        await event_log.append(pool, event)
    async with pool.acquire() as conn:
        apart, _ = await feed.read_after(conn, feed.START, 2, WrittenHere(), payloads_apart=True)
    assert [r.event for r in apart] == events[:2]
