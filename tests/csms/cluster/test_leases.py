"""Named leases: one holder at a time, takeover when the holder's connection dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from csms.cluster.leases import Lease, LeaseManager, lease_is_current, lease_key, run_while_leader
from tests.waiting import eventually

Managers = Callable[[str], LeaseManager]


@pytest.fixture
async def managers(database_dsn: str) -> AsyncIterator[Managers]:
    made: list[LeaseManager] = []

    def make(node_id: str) -> LeaseManager:
        manager = LeaseManager(
            database_dsn, node_id, retry_interval=0.05, check_interval=0.1, check_timeout=2.0
        )
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.stop()


async def kill_sessions_of(dsn: str, node_id: str) -> int:
    """Terminate the lease connection of ``node_id`` as a crash or a network cut would."""
    conn = await asyncpg.connect(dsn)
    try:
        killed: int = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1) t",
            f"csms-lease:{node_id}",
        )
        return killed
    finally:
        await conn.close()


def test_lease_key_is_stable_and_distinct() -> None:
    assert lease_key("alerts") == lease_key("alerts")
    assert lease_key("alerts") != lease_key("planner:site-1")
    assert -(2**63) <= lease_key("alerts") < 2**63


async def test_one_holder_and_takeover_when_the_connection_dies(
    managers: Managers, database_dsn: str
) -> None:
    a, b = managers("node-a"), managers("node-b")
    await a.start()
    await b.start()

    first = await a.acquire("alerts")
    assert first is not None and first.held
    assert await b.acquire("alerts") is None  # held elsewhere
    assert await a.acquire("alerts") is first  # idempotent for the holder
    assert a.holds("alerts") and not b.holds("alerts")

    waiting = asyncio.create_task(b.wait_for("alerts"))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    assert await kill_sessions_of(database_dsn, "node-a") == 1
    await asyncio.wait_for(first.lost.wait(), 10)  # the old holder learns it lost
    second = await asyncio.wait_for(waiting, 10)
    assert second.holder == "node-b"
    assert second.token > first.token  # fencing token grows at every change of holder
    assert not a.holds("alerts")

    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=1) as pool:
        async with pool.acquire() as conn, conn.transaction():
            assert await lease_is_current(conn, "alerts", second.token)
            assert not await lease_is_current(conn, "alerts", first.token)
        holder = await pool.fetchval("SELECT holder FROM cluster_leases WHERE name = 'alerts'")
    assert holder == "node-b"

    # the old holder reconnects by itself and can lead again once b lets go
    await b.release("alerts")
    assert second.lost.is_set()
    third = await eventually(lambda: a.acquire("alerts"), within=10)
    assert third.token > second.token


async def test_release_and_stop_hand_over_at_once(managers: Managers) -> None:
    a, b = managers("node-a"), managers("node-b")
    await a.start()
    await b.start()
    assert await a.acquire("x") is not None
    assert await a.acquire("y") is not None
    assert await b.acquire("x") is None
    await a.release("x")
    assert await b.acquire("x") is not None
    assert await b.acquire("y") is None
    await a.stop()
    assert await b.acquire("y") is not None


async def test_run_while_leader_moves_the_work(managers: Managers, database_dsn: str) -> None:
    a, b = managers("node-a"), managers("node-b")
    await a.start()
    await b.start()
    running: list[str] = []

    def worker(node: str) -> Callable[[Lease], Coroutine[Any, Any, None]]:
        async def work(lease: Lease) -> None:
            running.append(node)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(node)

        return work

    task_a = asyncio.create_task(run_while_leader(a, "engine", worker("a")))
    await eventually(lambda: _async(running == ["a"]))
    task_b = asyncio.create_task(run_while_leader(b, "engine", worker("b")))
    await asyncio.sleep(0.3)
    assert running == ["a"]  # never both

    task_a.cancel()  # the node stops: its work stops and b takes over
    await asyncio.gather(task_a, return_exceptions=True)
    await eventually(lambda: _async(running == ["b"]), within=10)

    task_a = asyncio.create_task(run_while_leader(a, "engine", worker("a")))
    await kill_sessions_of(database_dsn, "node-b")  # b's connection dies: a leads again
    await eventually(lambda: _async(running == ["a"]), within=10)
    for task in (task_a, task_b):
        task.cancel()
    await asyncio.gather(task_a, task_b, return_exceptions=True)
    assert running == []


async def _async(value: bool) -> bool:
    return value
