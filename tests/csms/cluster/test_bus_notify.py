"""The bus's NOTIFYs: none while a node is alone, one that wakes a node that joins later.

Each node sends ``NOTIFY csms_events`` after its commits only while another
node's bus listens (csms/bus.py); a node that starts listening says so at once.
The reader that must be woken here polls once a minute, so only a NOTIFY can
deliver its events within the test's wait: if the writer skipped a NOTIFY it
owed, the test times out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from csms.bus import EventBus
from csms.cluster.peers import Peers
from csms.events import ConnectorStatusChanged
from csms.storage import event_log
from tests.conftest import StartCsms
from tests.csms.cluster.test_feed import start_bus, status, take
from tests.csms.monitoring.test_alerts import boot16, status16
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

NEVER_POLLS = 60.0  # s: longer than any wait below


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=8) as made:
        yield made


@pytest.fixture
async def buses() -> AsyncIterator[list[EventBus]]:
    started: list[EventBus] = []
    yield started
    for bus in started:
        await bus.stop()


async def _commit(pool: asyncpg.Pool, bus: EventBus, charge_point_id: str, n: int) -> None:
    await event_log.append(pool, status(charge_point_id, n))
    bus.publish()


async def test_a_node_alone_sends_no_notify_and_still_delivers_its_own_events(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    bus = await start_bus(buses, pool, database_dsn, poll_interval=NEVER_POLLS)
    subscription = bus.subscribe("test")
    for n in range(5):
        await _commit(pool, bus, "CP-ALONE", n)
    got = await take(subscription, 5, within=10)
    assert [e.connector_id for e in got] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    assert bus.notifies == 0


async def test_a_node_that_starts_listening_later_is_notified(
    pool: asyncpg.Pool, database_dsn: str, buses: list[EventBus]
) -> None:
    writer = await start_bus(buses, pool, database_dsn, poll_interval=NEVER_POLLS)
    await _commit(pool, writer, "CP-BEFORE", 0)
    assert await writer.caught_up()
    assert writer.notifies == 0  # alone so far
    reader = await start_bus(buses, pool, database_dsn, poll_interval=NEVER_POLLS)
    subscription = reader.subscribe("test")
    # The reader's own "listening" NOTIFY tells the writer at once (not at its next check).
    await eventually(lambda: _peers(writer), within=10)
    for n in range(3):  # back to back: NOTIFYs coalesce, the one owed for the last goes later
        await _commit(pool, writer, "CP-AFTER", n)
    got = await take(subscription, 3, within=20)
    assert [e.connector_id for e in got] == [0, 1, 2]  # type: ignore[attr-defined]
    assert writer.notifies >= 1


async def _peers(bus: EventBus) -> bool:
    return bus.peers.listening


async def test_two_csms_nodes_see_each_others_events_through_the_notify(
    start_csms: StartCsms,
) -> None:
    """Two CSMS instances on one database: a status on B reaches A's bus, and B notified."""
    a = await start_csms(node_id="node-a")
    b = await start_csms(node_id="node-b")
    seen = a.app.bus.subscribe("test")
    async with charger_v16(b.ocpp_url, "CP-NOTIFIED") as cp:
        await boot16(cp)
        await cp.call(status16(1, "Faulted", "GroundFailure"))

        async def arrived() -> bool:
            while not seen.empty():
                event = await seen.get()
                if event.charge_point_id == "CP-NOTIFIED" and isinstance(
                    event, ConnectorStatusChanged
                ):
                    return True
            return False

        await eventually(arrived, within=15)
    assert b.app.bus.notifies >= 1


async def test_a_node_heard_from_counts_as_listening_for_a_while(
    database_conn: asyncpg.Connection,
) -> None:
    """pg_stat_activity shows no other bus here; a NOTIFY heard keeps the peer for heard_s."""
    peers = Peers(check_s=2.0, heard_s=30.0)
    await peers.check(database_conn, now=100.0)
    assert not peers.listening  # nobody listens on this fresh database
    peers.heard(now=101.0)
    await peers.check(database_conn, now=103.0)
    assert peers.listening
    await peers.check(database_conn, now=140.0)
    assert not peers.listening
