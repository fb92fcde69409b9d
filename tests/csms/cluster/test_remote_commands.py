"""Commands sent through one node's API reach chargers connected to another node."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ocpp.v16.call
import ocpp.v201.call
import pytest

from csms.cluster.remote_commands import CommandForwarder, channel_of
from csms.storage import cluster_commands
from tests.csms.cluster.conftest import Cluster, answering, wait_held_by
from tests.ocpp_clients import charger_v16, raw_charger
from tests.waiting import eventually

BOTH = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])


async def audit_rows(node: Any, cp_id: str) -> list[Any]:
    return list(
        await node.csms.pool.fetch(
            "SELECT * FROM command_audit WHERE charge_point_id = $1 ORDER BY id", cp_id
        )
    )


@BOTH
async def test_command_through_node_a_reaches_a_charger_on_node_b(
    cluster: Cluster, protocol: str
) -> None:
    a = await cluster.node("node-a", response_timeout=5.0)
    b = await cluster.node("node-b", response_timeout=5.0)
    async with answering(b.csms.ocpp_url, "CP-B", protocol) as charger:
        await wait_held_by(a, "CP-B", "node-b")
        answer = await a.command(
            "CP-B", "data_transfer", {"vendor_id": "com.example", "data": "hello from A"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["protocol"] == protocol
        assert body["response"] == {"status": "Accepted", "data": "hello from A"}
        assert charger.received == ["hello from A"]

        # The router answers with the library's dataclass, as for a local call.
        module = ocpp.v16.call if protocol == "ocpp1.6" else ocpp.v201.call
        direct = await a.csms.router.call("CP-B", module.DataTransfer(vendor_id="x", data="direct"))
        assert type(direct).__module__.endswith("call_result") and direct.data == "direct"
    rows = await audit_rows(a, "CP-B")
    assert [(r["outcome"], r["protocol"]) for r in rows] == [("answered", protocol)]
    states = await a.csms.pool.fetch(
        "SELECT caller_node, target_node, state FROM cluster_commands ORDER BY id"
    )
    assert [tuple(s) for s in states] == [("node-a", "node-b", "answered")] * 2


async def test_payload_above_the_notify_limit_is_forwarded(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    big = "x" * 20_000  # NOTIFY payloads stop at 8000 bytes; the row carries the data
    async with answering(b.csms.ocpp_url, "BIG", "ocpp2.0.1") as charger:
        await wait_held_by(a, "BIG", "node-b")
        answer = await a.command("BIG", "data_transfer", {"vendor_id": "v", "data": big})
        assert answer.status_code == 200 and answer.json()["response"]["data"] == big
        assert charger.received == [big]


async def test_offline_charger_is_409_from_any_node(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with answering(b.csms.ocpp_url, "GONE", "ocpp1.6"):
        await wait_held_by(a, "GONE", "node-b")
    await eventually(
        lambda: a.csms.pool.fetchval(
            "SELECT NOT connected FROM chargers WHERE charge_point_id = 'GONE'"
        )
    )
    answer = await a.command("GONE", "clear_cache")
    assert answer.status_code == 409 and "not connected" in answer.json()["error"]
    assert [r["outcome"] for r in await audit_rows(a, "GONE")] == ["not_connected"]


async def test_silent_remote_charger_is_504(cluster: Cluster) -> None:
    a = await cluster.node("node-a", response_timeout=1.0)
    b = await cluster.node("node-b", response_timeout=1.0)
    async with raw_charger(b.csms.ocpp_url, "MUTE", "ocpp1.6"):
        await wait_held_by(a, "MUTE", "node-b")
        answer = await a.command("MUTE", "clear_cache")
    assert answer.status_code == 504 and "did not answer" in answer.json()["error"]
    assert [r["outcome"] for r in await audit_rows(a, "MUTE")] == ["timeout"]
    state = await a.csms.pool.fetchval("SELECT state FROM cluster_commands")
    assert state == "timeout"


async def test_remote_callerror_is_passed_through_as_502(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with charger_v16(b.csms.ocpp_url, "PLAIN"):  # the library's charger handles nothing
        await wait_held_by(a, "PLAIN", "node-b")
        answer = await a.command("PLAIN", "clear_cache")
    assert answer.status_code == 502, answer.text
    assert answer.json()["call_error"]["code"] in {"NotImplemented", "NotSupported"}
    assert [r["outcome"] for r in await audit_rows(a, "PLAIN")] == ["call_error"]


async def test_wrong_version_is_refused_before_forwarding(cluster: Cluster) -> None:
    from csms.router import WrongProtocolVersion

    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with answering(b.csms.ocpp_url, "V201", "ocpp2.0.1"):
        await wait_held_by(a, "V201", "node-b")
        with pytest.raises(WrongProtocolVersion):
            await a.csms.router.call("V201", ocpp.v16.call.ClearCache())
    assert await a.csms.pool.fetchval("SELECT count(*) FROM cluster_commands") == 0


async def test_a_command_is_delivered_once_when_deliverers_race(
    cluster: Cluster, database_dsn: str
) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with answering(b.csms.ocpp_url, "ONCE", "ocpp1.6") as charger:
        await wait_held_by(a, "ONCE", "node-b")
        generation = await a.csms.pool.fetchval(
            "SELECT connection_generation FROM chargers WHERE charge_point_id = 'ONCE'"
        )
        # A row addressed to node-b without a notification: node-b's own poll, its
        # listener (woken by hand) and a twin forwarder with node-b's identity (as a
        # second process would be) all race for it.
        command_id = await cluster_commands.insert(
            a.csms.pool,
            caller_node="node-a",
            target_node="node-b",
            charge_point_id="ONCE",
            generation=generation,
            payload='{"module": "ocpp.v16.call", "class": "DataTransfer",'
            ' "fields": {"vendor_id": "v", "data": "once"}}',
            timeout_s=10.0,
            notify_channel="nobody_listens",
        )
        twins = [
            CommandForwarder(b.csms.pool, database_dsn, b.csms.app.settings, b.csms.app.registry)
            for _ in range(3)
        ]
        await asyncio.gather(
            *(twin._deliver(command_id) for twin in twins),
            a.csms.pool.execute(f"NOTIFY {channel_of('node-b')}, 'c:{command_id}'"),
        )
        await eventually(
            lambda: a.csms.pool.fetchval(
                "SELECT state = 'answered' FROM cluster_commands WHERE id = $1", command_id
            )
        )
        await asyncio.sleep(0)  # let any straggler run
        assert charger.received == ["once"]


async def test_a_command_past_its_deadline_is_never_delivered(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    async with answering(b.csms.ocpp_url, "LATE", "ocpp1.6") as charger:
        await wait_held_by(a, "LATE", "node-b")
        command_id = await cluster_commands.insert(
            a.csms.pool,
            caller_node="node-a",
            target_node="node-b",
            charge_point_id="LATE",
            generation=1,
            payload='{"module": "ocpp.v16.call", "class": "DataTransfer",'
            ' "fields": {"vendor_id": "v", "data": "late"}}',
            timeout_s=0.0,
            notify_channel="nobody_listens",
        )
        assert await cluster_commands.claim(a.csms.pool, command_id, "node-b") is None
        # Withdrawn by a caller that gave up: never claimed afterwards either.
        pending = await cluster_commands.insert(
            a.csms.pool,
            caller_node="node-a",
            target_node="nobody",
            charge_point_id="LATE",
            generation=1,
            payload="{}",
            timeout_s=60.0,
            notify_channel="nobody_listens",
        )
        assert await cluster_commands.expire(a.csms.pool, pending)
        assert await cluster_commands.claim(a.csms.pool, pending, "nobody") is None
    assert charger.received == []


async def test_a_command_follows_a_charger_that_moved_while_it_was_addressed(
    cluster: Cluster,
) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    c = await cluster.node("node-c")
    async with answering(b.csms.ocpp_url, "MOVING", "ocpp1.6"):
        await wait_held_by(a, "MOVING", "node-b")
        stale = await a.csms.app.router.remote.locate("MOVING")  # type: ignore[union-attr]
    async with answering(c.csms.ocpp_url, "MOVING", "ocpp1.6") as charger:
        await wait_held_by(a, "MOVING", "node-c")
        forwarder = a.csms.app.cluster.forwarder  # type: ignore[union-attr]
        locate = forwarder.locate
        answers = iter([stale, stale])  # for the protocol look-up, then for the call

        async def first_stale(cp_id: str) -> Any:
            return next(answers, None) or await locate(cp_id)

        forwarder.locate = first_stale  # the router read the presence just before the move
        answer = await a.command("MOVING", "data_transfer", {"vendor_id": "v", "data": "moved"})
        assert answer.status_code == 200, answer.text
        assert charger.received == ["moved"]
    states = await a.csms.pool.fetch("SELECT target_node, state FROM cluster_commands ORDER BY id")
    assert [tuple(s) for s in states] == [("node-b", "not_connected"), ("node-c", "answered")]


async def test_every_node_reaches_chargers_on_every_other_node(cluster: Cluster) -> None:
    nodes = [await cluster.node(f"node-{i}") for i in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for i, node in enumerate(nodes):
            protocol = "ocpp1.6" if i % 2 == 0 else "ocpp2.0.1"
            await stack.enter_async_context(answering(node.csms.ocpp_url, f"AT-{i}", protocol))
        for i, node in enumerate(nodes):
            await wait_held_by(node, f"AT-{i}", node.node_id)
        for caller in nodes:
            for i in range(len(nodes)):
                answer = await caller.command(
                    f"AT-{i}", "data_transfer", {"vendor_id": "v", "data": caller.node_id}
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["response"]["data"] == caller.node_id


async def test_commands_survive_a_dropped_listen_connection(cluster: Cluster) -> None:
    a = await cluster.node("node-a")
    b = await cluster.node("node-b")
    forwarder = b.csms.app.cluster.forwarder  # type: ignore[union-attr]
    listener = forwarder._listener
    assert listener is not None
    async with answering(b.csms.ocpp_url, "DEAF", "ocpp2.0.1") as charger:
        await wait_held_by(a, "DEAF", "node-b")
        # The database drops node B's LISTEN connection: notifications to B are lost
        # until it reconnects; the polling fallback still delivers.
        await a.csms.pool.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
        answer = await a.command("DEAF", "data_transfer", {"vendor_id": "v", "data": "still"})
        assert answer.status_code == 200, answer.text
        assert charger.received == ["still"]
        await eventually(lambda: _listening_again(forwarder, listener), within=10.0)


async def _listening_again(forwarder: CommandForwarder, old: Any) -> bool:
    new = forwarder._listener
    return new is not None and new is not old and not new.is_closed()
