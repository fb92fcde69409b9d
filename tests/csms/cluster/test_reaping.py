"""A node that dies (kill -9, lost lease) never leaves its chargers shown connected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.csms.cluster.conftest import Cluster, Node, answering, held_by, wait_held_by
from tests.waiting import eventually

LEASE_S = 3.0  # short, so that tests do not wait long; the default is 15 s


@contextlib.asynccontextmanager
async def csms_process(database_dsn: str, node_id: str | None) -> AsyncIterator[Any]:
    """``python -m csms`` as a separate node; yields (process, ocpp base url)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_dsn,
        "CSMS_MIGRATE_ON_START": "false",
        "CSMS_HOST": "127.0.0.1",
        "CSMS_API_PORT": "0",
        "CSMS_LOG_LEVEL": "warning",
        "CSMS_NODE_LEASE_SECONDS": str(LEASE_S),
    }
    env.pop("CSMS_NODE_ID", None)
    if node_id is not None:
        env["CSMS_NODE_ID"] = node_id
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "--port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        ready = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert ready.startswith("CSMS ready: chargers connect to ws://127.0.0.1:"), ready
        yield process, ready.split("connect to ")[1].split("/<charge_point_id>")[0]
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def downtime(node: Node, cp_id: str) -> list[Any]:
    return list(
        await node.csms.pool.fetch(
            "SELECT reason, started_at, ended_at FROM charger_downtime"
            " WHERE charge_point_id = $1 ORDER BY id",
            cp_id,
        )
    )


async def node_lost_events(node: Node, cp_id: str) -> int:
    return int(
        await node.csms.pool.fetchval(
            "SELECT count(*) FROM events WHERE charge_point_id = $1"
            " AND type = 'charger_disconnected' AND payload->>'reason' = 'node_lost'",
            cp_id,
        )
    )


async def test_chargers_of_a_killed_node_go_offline_then_online_elsewhere(
    cluster: Cluster, database_dsn: str
) -> None:
    survivor = await cluster.node("survivor", node_lease_seconds=LEASE_S)
    other = await cluster.node("other", node_lease_seconds=LEASE_S)
    async with csms_process(database_dsn, "victim") as (process, url):
        async with answering(url, "K-16", "ocpp1.6"), answering(url, "K-201", "ocpp2.0.1"):
            await wait_held_by(survivor, "K-16", "victim")
            await wait_held_by(survivor, "K-201", "victim")
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()

            async def both_offline() -> bool:
                return (await held_by(survivor, "K-16"), await held_by(survivor, "K-201")) == (
                    None,
                    None,
                )

            # lease + one reaping interval (lease/3); generous on a loaded machine
            await eventually(both_offline, within=LEASE_S * 6)
    for cp_id in ("K-16", "K-201"):
        assert await node_lost_events(survivor, cp_id) == 1  # exactly once, cluster-wide
        [down] = await eventually(lambda cp_id=cp_id: downtime(survivor, cp_id))
        assert down["reason"] == "node_lost" and down["ended_at"] is None
    nodes = (await survivor.reader.get("/cluster/nodes")).json()["items"]
    assert {n["node_id"] for n in nodes} == {"survivor", "other"}
    assert (await survivor.reader.get("/chargers/K-16")).json()["connected"] is False

    # They reconnect to the surviving nodes: online again, the outage kept in history.
    async with answering(other.csms.ocpp_url, "K-16", "ocpp1.6"):
        async with answering(survivor.csms.ocpp_url, "K-201", "ocpp2.0.1"):
            await wait_held_by(survivor, "K-16", "other")
            await wait_held_by(survivor, "K-201", "survivor")
            for cp_id in ("K-16", "K-201"):
                [down] = await eventually(lambda cp_id=cp_id: _closed_downtime(survivor, cp_id))
                assert down["reason"] == "node_lost" and down["ended_at"] > down["started_at"]
            answer = await survivor.command("K-16", "data_transfer", {"vendor_id": "v"})
            assert answer.status_code == 200, answer.text


async def _closed_downtime(node: Node, cp_id: str) -> list[Any]:
    rows = await downtime(node, cp_id)
    return rows if rows and all(r["ended_at"] is not None for r in rows) else []


@pytest.mark.parametrize("node_id", ["solo", None], ids=["same-node-id", "default-node-id"])
async def test_a_restart_after_kill_9_cleans_up_at_once(
    cluster: Cluster, database_dsn: str, node_id: str | None
) -> None:
    """A single node restarted after kill -9 needs no clean-up and no lease wait."""
    async with csms_process(database_dsn, node_id) as (process, url):
        async with answering(url, "SOLO", "ocpp2.0.1"):
            await eventually(
                lambda: cluster_pool_value(
                    database_dsn, "SELECT connected FROM chargers WHERE charge_point_id = 'SOLO'"
                )
            )
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
    # The lease (3 s) has not expired: only the restart tells that the old node is dead.
    restarted = await cluster.node(node_id or "restarted", node_lease_seconds=60.0)
    assert await held_by(restarted, "SOLO") is None  # right after start-up, no waiting
    [down] = await downtime(restarted, "SOLO")
    assert down["ended_at"] is None
    assert await node_lost_events(restarted, "SOLO") == 1
    nodes = (await restarted.reader.get("/cluster/nodes")).json()["items"]
    assert [n["node_id"] for n in nodes] == [restarted.node_id]


async def cluster_pool_value(dsn: str, query: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_a_node_cut_off_past_its_lease_is_reaped_and_its_late_close_changes_nothing(
    cluster: Cluster,
) -> None:
    """Network cut: the node lives on but stops renewing; its chargers move to another."""
    cut = await cluster.node("cut-off", node_lease_seconds=LEASE_S)
    survivor = await cluster.node("survivor", node_lease_seconds=LEASE_S)
    for task in cut.csms.app._tasks:  # its renewals stop (the database is out of reach)
        if "NodeMembership.run" in task.get_coro().__qualname__:  # type: ignore[union-attr]
            task.cancel()
    async with answering(cut.csms.ocpp_url, "CUT", "ocpp1.6"):
        await wait_held_by(survivor, "CUT", "cut-off")
        await eventually(lambda: _is_offline(survivor, "CUT"), within=LEASE_S * 6)
        assert await node_lost_events(survivor, "CUT") == 1
        async with answering(survivor.csms.ocpp_url, "CUT", "ocpp1.6"):
            await wait_held_by(survivor, "CUT", "survivor")
    # Both sockets have closed now: the one on the cut-off node recorded nothing.
    await eventually(lambda: _is_offline(survivor, "CUT"))
    rows = await survivor.csms.pool.fetch(
        "SELECT type, payload->>'reason' AS reason FROM events WHERE charge_point_id = 'CUT'"
        " AND type LIKE 'charger_%connected' ORDER BY id"
    )
    assert [(r["type"], r["reason"] == "node_lost") for r in rows] == [
        ("charger_connected", False),
        ("charger_disconnected", True),  # by the survivor, for the cut-off node
        ("charger_connected", False),
        ("charger_disconnected", False),  # the charger left the survivor
    ]


async def _is_offline(node: Node, cp_id: str) -> bool:
    return bool(
        await node.csms.pool.fetchval(
            "SELECT NOT connected FROM chargers WHERE charge_point_id = $1", cp_id
        )
    )
