"""Presence: which node holds each charger, fenced by the connection generation."""

from __future__ import annotations

import asyncio

import pytest

from csms.central import ConnectionSuperseded, utcnow
from csms.config import UnknownChargerPolicy
from csms.events import ChargerConnected, Protocol
from csms.storage import cluster_commands
from tests.conftest import StartCsms
from tests.csms.cluster.conftest import Cluster, answering, held_by, wait_held_by
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


async def events_of(node: object, cp_id: str) -> list[tuple[str, str | None]]:
    rows = await node.csms.pool.fetch(  # type: ignore[attr-defined]
        "SELECT type, payload->>'reason' AS reason FROM events"
        " WHERE charge_point_id = $1 AND type LIKE 'charger_%connected' ORDER BY id",
        cp_id,
    )
    return [(r["type"], r["reason"]) for r in rows]


async def test_stale_socket_closing_after_the_charger_moved_leaves_it_online(
    cluster: Cluster,
) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with raw_charger(a.csms.ocpp_url, "MOVER", "ocpp1.6") as old:
        await wait_held_by(a, "MOVER", "node-a")
        # The charger lost its link to A (A has not noticed) and connected to B.
        async with raw_charger(b.csms.ocpp_url, "MOVER", "ocpp1.6"):
            await wait_held_by(a, "MOVER", "node-b")
            await old.websocket.close()  # the stale socket on A closes now
            await eventually(lambda: _not_in_registry(a, "MOVER"))
            assert await held_by(a, "MOVER") == "node-b"
            charger = (await a.reader.get("/chargers/MOVER")).json()
            assert charger["connected"] is True and charger["node_id"] == "node-b"
            assert charger["connection_generation"] > 0
            assert await events_of(a, "MOVER") == [
                ("charger_connected", None),
                ("charger_connected", None),
            ]
    await eventually(lambda: _offline(a, "MOVER"))
    assert (await events_of(a, "MOVER"))[-1][0] == "charger_disconnected"
    charger = (await b.reader.get("/chargers/MOVER")).json()
    assert charger["connected"] is False and charger["node_id"] is None


async def _not_in_registry(node: object, cp_id: str) -> bool:
    return node.csms.app.registry.get(cp_id) is None  # type: ignore[attr-defined,no-any-return]


async def _offline(node: object, cp_id: str) -> bool:
    return bool(
        await node.csms.pool.fetchval(  # type: ignore[attr-defined]
            "SELECT NOT connected FROM chargers WHERE charge_point_id = $1", cp_id
        )
    )


async def test_an_older_connection_recorded_late_does_not_take_the_charger_back(
    cluster: Cluster,
) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    central = a.csms.app.central
    older = await central.next_generation()  # accepted first, recorded slowly
    async with raw_charger(b.csms.ocpp_url, "RACE", "ocpp2.0.1"):
        await wait_held_by(a, "RACE", "node-b")
        with pytest.raises(ConnectionSuperseded):
            await central.connected(
                ChargerConnected(
                    charge_point_id="RACE", occurred_at=utcnow(), protocol=Protocol.V201
                ),
                older,
            )
        assert await held_by(a, "RACE") == "node-b"


async def test_cluster_nodes_lists_live_nodes_with_their_chargers(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    c = await cluster.node("node-c")
    async with (
        answering(b.csms.ocpp_url, "ON-B-1", "ocpp1.6"),
        answering(b.csms.ocpp_url, "ON-B-2", "ocpp2.0.1"),
        answering(c.csms.ocpp_url, "ON-C-1", "ocpp1.6"),
    ):
        await wait_held_by(a, "ON-C-1", "node-c")
        await wait_held_by(a, "ON-B-2", "node-b")
        answer = await a.reader.get("/cluster/nodes")
        assert answer.status_code == 200, answer.text
        listing = answer.json()
    by_id = {n["node_id"]: n for n in listing["items"]}
    assert set(by_id) == {"node-a", "node-b", "node-c"}
    assert {k: n["chargers_connected"] for k, n in by_id.items()} == {
        "node-a": 0,
        "node-b": 2,
        "node-c": 1,
    }
    assert listing["chargers_connected"] == 3
    assert by_id["node-a"]["self"] and not by_id["node-b"]["self"]
    assert by_id["node-b"]["version"] and by_id["node-b"]["lease_age_s"] >= 0
    assert by_id["node-b"]["api_url"].endswith("/api/v1") and not by_id["node-b"]["draining"]
    await c.csms.app.stop()  # a clean stop leaves the cluster at once
    listing = (await a.reader.get("/cluster/nodes")).json()
    assert {n["node_id"] for n in listing["items"]} == {"node-a", "node-b"}


async def test_a_charger_registered_by_its_boot_gets_its_presence(cluster: Cluster) -> None:
    a = await cluster.node("node-a", unknown_charger_policy=UnknownChargerPolicy.PENDING)
    b = await cluster.node("node-b", unknown_charger_policy=UnknownChargerPolicy.PENDING)
    async with raw_charger(b.csms.ocpp_url, "NEWCOMER", "ocpp1.6") as charger:
        boot = await charger.exchange(
            '[2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]'
        )
        assert boot[2]["status"] == "Pending"
        await wait_held_by(a, "NEWCOMER", "node-b")  # an operator on node A can reach it


async def test_old_forwarded_commands_are_pruned(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    await a.csms.pool.execute(
        """
        INSERT INTO cluster_commands (caller_node, target_node, charge_point_id, generation,
                                      payload, deadline, state, created_at)
        VALUES ('x', 'y', 'OLD', 1, '{}', now() - interval '2 hours', 'answered',
                now() - interval '2 hours'),
               ('x', 'y', 'NEW', 1, '{}', now() + interval '1 minute', 'pending', now())
        """
    )
    assert await cluster_commands.prune(a.csms.pool, older_than_hours=1.0) == 1
    assert await a.csms.pool.fetchval("SELECT charge_point_id FROM cluster_commands") == "NEW"
    assert (await a.operator.get("/cluster/nodes")).status_code == 200
    anonymous = await a.operator.get("/cluster/nodes", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_a_charger_held_without_a_socket_is_released_by_its_node(cluster: Cluster) -> None:
    """A disconnect that could not be recorded (database blip) leaves no ghost for ever."""
    a = await cluster.node("node-a")
    await a.csms.pool.execute(
        "INSERT INTO chargers (charge_point_id, connected, node_id, connection_generation)"
        " VALUES ('GHOST', true, 'node-a', -7)"
    )
    membership = a.csms.app.cluster.membership  # type: ignore[union-attr]
    async with answering(a.csms.ocpp_url, "REAL", "ocpp1.6"):
        await wait_held_by(a, "REAL", "node-a")
        await membership._reconcile()  # first sight: could be a socket closing right now
        assert await held_by(a, "GHOST") == "node-a"
        await membership._reconcile()
        assert await held_by(a, "GHOST") is None
        assert await held_by(a, "REAL") == "node-a"  # its socket is open
    assert await events_of(a, "GHOST") == [("charger_disconnected", "untracked")]


async def test_the_lease_is_renewed_while_every_pool_connection_is_busy(
    start_csms: StartCsms,
) -> None:
    """A reconnect storm or a drain can keep the whole pool busy; the lease must not wait
    for it, or the other nodes would take this live node for dead."""
    running = await start_csms(db_pool_min=2, db_pool_max=2)
    membership = running.app.cluster.membership  # type: ignore[union-attr]
    before = await running.pool.fetchval(
        "SELECT renewed_at FROM nodes WHERE node_id = $1", membership.node_id
    )
    held = [await running.pool.acquire() for _ in range(2)]
    try:
        await asyncio.wait_for(membership.renew(), 5)
        after = await held[0].fetchval(
            "SELECT renewed_at FROM nodes WHERE node_id = $1", membership.node_id
        )
        assert after > before
    finally:
        for conn in held:
            await running.pool.release(conn)


async def test_renewals_at_once_share_the_lease_connection_one_at_a_time(
    start_csms: StartCsms,
) -> None:
    """advertise() renews while the lease loop may be renewing: both use the one lease
    connection, which takes one operation at a time (a second one raised)."""
    running = await start_csms()
    membership = running.app.cluster.membership  # type: ignore[union-attr]
    await asyncio.wait_for(asyncio.gather(*(membership.renew() for _ in range(5))), 10)
