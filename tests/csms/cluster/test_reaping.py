"""A node that dies (kill -9, lost lease) never leaves its chargers shown connected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v16 import call as call16

from tests.csms.cluster.conftest import Cluster, Node, answering, held_by, wait_held_by
from tests.waiting import eventually

LEASE_S = 5.0  # short, so that tests do not wait long (default 15 s); renewed every 1.7 s


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
    await survivor.csms.add_token("DRIVER")
    async with csms_process(database_dsn, "victim") as (process, url):
        async with (
            answering(url, "K-16", "ocpp1.6") as k16,
            answering(url, "K-201", "ocpp2.0.1"),
        ):
            await wait_held_by(survivor, "K-16", "victim")
            await wait_held_by(survivor, "K-201", "victim")
            started = await k16.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="DRIVER", meter_start=1000, timestamp=_now()
                )
            )
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

    # They reconnect to the surviving nodes: online again, the outage kept in history,
    # and the session that began on the dead node ends on another.
    async with answering(other.csms.ocpp_url, "K-16", "ocpp1.6") as k16:
        async with answering(survivor.csms.ocpp_url, "K-201", "ocpp2.0.1"):
            await wait_held_by(survivor, "K-16", "other")
            await wait_held_by(survivor, "K-201", "survivor")
            for cp_id in ("K-16", "K-201"):
                [down] = await eventually(lambda cp_id=cp_id: _closed_downtime(survivor, cp_id))
                assert down["reason"] == "node_lost" and down["ended_at"] > down["started_at"]
            answer = await survivor.command("K-16", "data_transfer", {"vendor_id": "v"})
            assert answer.status_code == 200, answer.text
            await k16.call(
                call16.StopTransaction(
                    transaction_id=started.transaction_id, meter_stop=4500, timestamp=_now()
                )
            )
    session = await survivor.csms.pool.fetchrow(
        "SELECT status, energy_wh FROM sessions WHERE charge_point_id = 'K-16'"
    )
    assert (session["status"], session["energy_wh"]) == ("ended", 3500)


def _now() -> str:
    return datetime.now(UTC).isoformat()


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
    # The lease has (most likely) not expired: the restart itself tells the old node is dead.
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


async def test_a_command_waiting_for_a_dead_node_follows_its_charger(cluster: Cluster) -> None:
    """Commands addressed to a node that died are answered at its reaping, not at their
    deadline; one never sent follows the charger to the node it reconnected to."""
    a = await cluster.node("node-a", node_lease_seconds=LEASE_S, response_timeout=60.0)
    b = await cluster.node("node-b", node_lease_seconds=LEASE_S)
    await a.csms.pool.execute(
        """
        INSERT INTO nodes (node_id, host, pid, version, lease_expires_at)
        VALUES ('ghost', 'elsewhere', 1, 'x', now() + interval '1 hour');
        INSERT INTO chargers (charge_point_id, protocol, connected, node_id,
                              connection_generation)
        VALUES ('HAUNTED', 'ocpp1.6', true, 'ghost', -2), ('LOST', 'ocpp1.6', true, 'ghost', -1)
        """
    )
    follows = asyncio.create_task(
        a.command("HAUNTED", "data_transfer", {"vendor_id": "v", "data": "found you"})
    )
    stranded = asyncio.create_task(a.command("LOST", "clear_cache"))
    await eventually(
        lambda: a.csms.pool.fetchval(
            "SELECT count(*) = 2 FROM cluster_commands WHERE state = 'pending'"
        )
    )
    async with answering(b.csms.ocpp_url, "HAUNTED", "ocpp1.6") as charger:
        await wait_held_by(a, "HAUNTED", "node-b")
        await a.csms.pool.execute(  # the ghost's lease runs out
            "UPDATE nodes SET lease_expires_at = now() - interval '1 second'"
            " WHERE node_id = 'ghost'"
        )
        found = await asyncio.wait_for(follows, 30)
        lost = await asyncio.wait_for(stranded, 30)
        assert found.status_code == 200 and charger.received == ["found you"]
    assert lost.status_code == 409, lost.text
    states = await a.csms.pool.fetch(
        "SELECT charge_point_id, target_node, state FROM cluster_commands ORDER BY id"
    )
    assert sorted(tuple(s) for s in states) == [
        ("HAUNTED", "ghost", "not_connected"),
        ("HAUNTED", "node-b", "answered"),
        ("LOST", "ghost", "not_connected"),
    ]


async def test_nodes_reaping_at_once_mark_each_charger_offline_exactly_once(
    cluster: Cluster,
) -> None:
    nodes = [await cluster.node(f"reaper-{i}") for i in range(3)]
    pool = nodes[0].csms.pool
    await pool.execute(
        """
        INSERT INTO nodes (node_id, host, pid, version, lease_expires_at, renewed_at)
        VALUES ('dead', 'elsewhere', 1, 'x', now() - interval '1 second',
                now() - interval '16 seconds');
        INSERT INTO chargers (charge_point_id, connected, connected_at, node_id,
                              connection_generation)
        SELECT 'D-' || g, true, now() - interval '1 hour', 'dead', -g
        FROM generate_series(1, 300) AS g
        """
    )
    reaped = await asyncio.gather(
        *(n.csms.app.cluster.membership._reap() for n in nodes)  # type: ignore[union-attr]
    )
    assert sum(reaped) == 300
    counts = await pool.fetch(
        "SELECT charge_point_id, count(*) AS n FROM events WHERE type = 'charger_disconnected'"
        " AND payload->>'reason' = 'node_lost' GROUP BY charge_point_id"
    )
    assert len(counts) == 300 and {r["n"] for r in counts} == {1}
    assert await pool.fetchval("SELECT count(*) FROM chargers WHERE connected") == 0
    assert await pool.fetchval("SELECT count(*) FROM nodes WHERE node_id = 'dead'") == 0
