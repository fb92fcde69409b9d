"""The event feed: committed events in commit order, nothing skipped, nothing dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from csms.bus import EventBus, Subscription
from csms.cluster import feed
from csms.events import ConnectorStatus, ConnectorStatusChanged, Event, MeterSample, MeterSampled
from csms.storage import event_log

pytestmark = pytest.mark.timeout(120)

Buses = Callable[..., "asyncio.Future[EventBus]"]


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=12) as made:
        yield made


@pytest.fixture
async def buses(pool: asyncpg.Pool, database_dsn: str) -> AsyncIterator[list[EventBus]]:
    """Started buses (one per simulated node), stopped at the end."""
    started: list[EventBus] = []
    yield started
    for bus in started:
        await bus.stop()


async def start_bus(
    started: list[EventBus], pool: asyncpg.Pool, dsn: str, **options: float
) -> EventBus:
    bus = EventBus(**options)  # type: ignore[arg-type]
    await bus.start(pool, dsn)
    started.append(bus)
    return bus


def status(charge_point_id: str, n: int) -> ConnectorStatusChanged:
    """The n-th status of a charger; ``connector_id`` carries n so order can be checked."""
    return ConnectorStatusChanged(
        charge_point_id=charge_point_id,
        occurred_at=datetime.now(UTC),
        evse_id=1,
        connector_id=n,
        status=ConnectorStatus.AVAILABLE if n % 2 else ConnectorStatus.OCCUPIED,
    )


async def take(subscription: Subscription, count: int, within: float = 60) -> list[Event]:
    async def collect() -> list[Event]:
        return [await subscription.get() for _ in range(count)]

    return await asyncio.wait_for(collect(), within)


async def test_a_row_committed_after_a_newer_one_is_not_skipped(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    subscription = bus.subscribe("test")
    slow = await pool.acquire()
    try:
        transaction = slow.transaction()
        await transaction.start()
        await event_log.append(slow, status("CP-SLOW", 1))  # smaller id, commits last
        await event_log.append(pool, status("CP-FAST", 2))  # committed at once
        bus.publish()
        await asyncio.sleep(0.3)  # several reads: CP-FAST must wait behind CP-SLOW
        assert subscription.empty()
        await transaction.commit()
    finally:
        await pool.release(slow)
    bus.publish()
    got = await take(subscription, 2)
    assert [e.charge_point_id for e in got] == ["CP-SLOW", "CP-FAST"]  # commit order, both


async def test_events_round_trip_with_their_types(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    bus = await start_bus(buses, pool, database_dsn)
    subscription = bus.subscribe("test")
    sampled = MeterSampled(
        charge_point_id="CP",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        evse_id=1,
        connector_id=1,
        transaction_id="T",
        samples=(
            MeterSample(datetime(2026, 1, 1, tzinfo=UTC), "Energy.Active.Import.Register", 5, "Wh"),
        ),
    )
    await event_log.record_meter_sampled(pool, sampled)
    bus.publish()
    [got] = await take(subscription, 1)
    assert got == sampled  # same class, fields, id and times


async def test_every_node_sees_every_writers_events_in_order_per_charger(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """Concurrent writers on two 'nodes'; each node's subscriber sees each charger in order."""
    node_a = await start_bus(buses, pool, database_dsn)
    node_b = await start_bus(buses, pool, database_dsn)
    subs = [node_a.subscribe("a"), node_b.subscribe("b")]
    chargers, per_charger = 8, 150

    async def writer(charger: str, bus: EventBus) -> None:
        for n in range(per_charger):
            async with pool.acquire() as conn, conn.transaction():
                await event_log.append(conn, status(charger, n))
            bus.publish()

    await asyncio.gather(*(writer(f"CP-{i}", (node_a, node_b)[i % 2]) for i in range(chargers)))
    for subscription in subs:
        got = await take(subscription, chargers * per_charger)
        by_charger: dict[str, list[int]] = {}
        for event in got:
            assert isinstance(event, ConnectorStatusChanged)
            by_charger.setdefault(event.charge_point_id, []).append(event.connector_id)
        assert by_charger == {f"CP-{i}": list(range(per_charger)) for i in range(chargers)}
        assert len({e.event_id for e in got}) == len(got)  # no duplicates


async def test_a_slow_subscriber_loses_nothing_and_holds_back_no_one(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """A flood through a tiny buffer: the sleeper catches up from the table."""
    bus = await start_bus(buses, pool, database_dsn, buffer_size=50, page_size=100)
    slow, fast = bus.subscribe("slow"), bus.subscribe("fast")
    total = 3000

    async def flood() -> None:
        for start in range(0, total, 100):
            async with pool.acquire() as conn, conn.transaction():
                for n in range(start, start + 100):
                    await event_log.append(conn, status("CP-FLOOD", n))
            bus.publish()

    async def sleeper() -> list[int]:
        seen = []
        for _ in range(total):
            event = await slow.get()
            assert isinstance(event, ConnectorStatusChanged)
            seen.append(event.connector_id)
            if len(seen) % 10 == 0:
                await asyncio.sleep(0.001)  # far slower than the flood
        return seen

    reading = asyncio.create_task(sleeper())
    await flood()
    fast_seen = [e.connector_id for e in await take(fast, total)]  # type: ignore[attr-defined]
    assert fast_seen == list(range(total))
    assert await asyncio.wait_for(reading, 90) == list(range(total))
    assert slow.caught_up_from_table > 0  # it did fall out of the buffer
    assert len(bus._buffer) <= 50  # memory stays bounded


async def test_a_resumed_cursor_starts_after_its_position(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    for n in range(5):
        await event_log.append(pool, status("CP-R", n))
    bus = await start_bus(buses, pool, database_dsn)
    async with pool.acquire() as conn:
        rows, _ = await feed.read_after(conn, feed.START, 10)
        await feed.save_cursor(conn, "engine", rows[1].position)
        await feed.save_cursor(conn, "engine", rows[0].position)  # never moves backwards
        cursor = await feed.load_cursor(conn, "engine")
    assert cursor == rows[1].position
    subscription = await bus.subscribe_at("engine", cursor)
    got = await take(subscription, 3)
    assert [e.connector_id for e in got] == [2, 3, 4]  # type: ignore[attr-defined]


async def test_a_long_transaction_delays_delivery_and_is_named(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus], capsys: pytest.CaptureFixture[str]
) -> None:
    """The price of the horizon: events wait for an older write transaction, and a log says so."""
    bus = await start_bus(buses, pool, database_dsn, poll_interval=0.05)
    subscription = bus.subscribe("test")
    async with pool.acquire() as long_running:
        transaction = long_running.transaction()
        await transaction.start()
        await long_running.execute("SELECT pg_current_xact_id()")  # holds an xid
        await event_log.append(pool, status("CP-WAITING", 1))
        bus.publish()
        await asyncio.sleep(1.5)
        assert subscription.empty()
        await transaction.rollback()
    [event] = await take(subscription, 1)
    assert event.charge_point_id == "CP-WAITING"
    assert "bus.held_back" in capsys.readouterr().err


async def test_a_cursor_older_than_the_outbox_retention_is_logged(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus], capsys: pytest.CaptureFixture[str]
) -> None:
    bus = await start_bus(buses, pool, database_dsn, retention_hours=168.0)
    await bus.subscribe_at("fresh", feed.START, saved_at=datetime.now(UTC))
    assert "bus.cursor_older_than_retention" not in capsys.readouterr().err
    stale = datetime.now(UTC) - timedelta(hours=200)
    await bus.subscribe_at("stale", feed.START, saved_at=stale)
    assert "bus.cursor_older_than_retention" in capsys.readouterr().err


async def test_another_nodes_events_arrive_without_notify(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    """A lost LISTEN connection delays events to the poll; it never loses them."""
    reader = await start_bus(buses, pool, database_dsn, poll_interval=0.2)
    writer = await start_bus(buses, pool, database_dsn)
    subscription = reader.subscribe("test")
    async with pool.acquire() as conn:
        killed = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'csms-bus-listener') t"
        )
    assert killed == 2
    for n in range(3):
        await event_log.append(pool, status("CP-POLL", n))
        writer.publish()
    got = await take(subscription, 3, within=10)
    assert [e.connector_id for e in got] == [0, 1, 2]  # type: ignore[attr-defined]
