"""Draining a node (SIGTERM, rolling restart): no new chargers, every charger closed with
1012 only after the messages it sent before the close were answered."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from csms.drain import _unread_bytes, close_times, is_idle
from tests.conftest import StartCsms
from tests.waiting import eventually

BOOT = {
    "ocpp1.6": ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
    "ocpp2.0.1": (
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
    ),
}


def test_close_times_are_one_per_slot_of_the_window() -> None:
    times = close_times(100, 10.0, random.Random(7))
    assert len(times) == 100
    for index, at in enumerate(times):
        assert index * 0.1 <= at < (index + 1) * 0.1  # evenly spaced, jittered in its slot
    assert close_times(0, 10.0, random.Random(7)) == []
    assert close_times(3, 0.0, random.Random(7)) == [0.0, 0.0, 0.0]


async def _answer_to(ws: ClientConnection, message_id: str) -> list[object]:
    """The CSMS's answer to our call ``message_id``; calls of the CSMS's own (e.g. the
    post-boot probe of csms.interop) are refused with NotImplemented meanwhile."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame[0] == 2:
            await ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
        elif frame[1] == message_id:
            return list(frame)


async def _frames_until_close(ws: ClientConnection) -> list[list[object]]:
    """Every frame the CSMS sends until it closes; its own calls (e.g. csms.interop's
    post-boot probe) are refused with NotImplemented, as a charger lacking them would."""
    frames = []
    try:
        async for raw in ws:
            frames.append(json.loads(raw))
            if frames[-1][0] == 2:
                await ws.send(json.dumps([4, frames[-1][1], "NotImplemented", "", {}]))
    except ConnectionClosed:
        pass
    return frames


async def test_drain_answers_calls_in_flight_then_closes_every_charger_with_1012(
    start_csms: StartCsms,
) -> None:
    running = await start_csms()
    ids = [f"DRAIN-{n}" for n in range(6)]
    sockets: dict[str, ClientConnection] = {}
    for n, charge_point_id in enumerate(ids):
        subprotocol = "ocpp1.6" if n % 2 else "ocpp2.0.1"
        sockets[charge_point_id] = await connect(
            f"{running.ocpp_url}/{charge_point_id}",
            subprotocols=[subprotocol],  # type: ignore[list-item]
        )
    await eventually(lambda: _all_connected(running.pool, ids))
    # Hold the chargers' rows: each BootNotification stays in flight inside the CSMS.
    blocker = await running.pool.acquire()
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("SELECT 1 FROM chargers WHERE charge_point_id = ANY($1) FOR UPDATE", ids)
    readers = {}
    for charge_point_id, ws in sockets.items():
        action, payload = BOOT[str(ws.subprotocol)]
        await ws.send(json.dumps([2, f"boot-{charge_point_id}", action, payload]))
        readers[charge_point_id] = asyncio.create_task(_frames_until_close(ws))
    connections = {c.id: c for c in running.app.registry.all()}

    async def all_busy() -> bool:
        return not any(is_idle(connections[i]) for i in ids)

    await eventually(all_busy)
    drain = asyncio.create_task(running.app.drain(0.0))  # everyone at once: the hard case
    await eventually(lambda: _async(not running.app._server.accepting))  # type: ignore[union-attr]
    with pytest.raises(OSError):  # new chargers go elsewhere: this node no longer listens
        await connect(f"{running.ocpp_url}/DRAIN-NEW", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    await asyncio.sleep(0.2)
    assert not any(reader.done() for reader in readers.values()), "closed with a call unanswered"
    await lock.rollback()
    await running.pool.release(blocker)
    report = await asyncio.wait_for(drain, 30)
    assert report.chargers == len(ids) and report.closed_busy == 0
    for charge_point_id, reader in readers.items():
        frames = await asyncio.wait_for(reader, 10)
        assert frames and frames[0][:2] == [3, f"boot-{charge_point_id}"], frames
        assert sockets[charge_point_id].close_code == 1012
        assert sockets[charge_point_id].close_reason == "service restart"


async def test_a_draining_node_keeps_serving_its_chargers_until_each_is_closed(
    start_csms: StartCsms,
) -> None:
    running = await start_csms()
    async with connect(
        f"{running.ocpp_url}/DRAIN-SLOW",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
    ) as ws:
        action, payload = BOOT["ocpp2.0.1"]
        await ws.send(json.dumps([2, "b", action, payload]))
        assert (await _answer_to(ws, "b"))[0] == 3
        drain = asyncio.create_task(running.app.drain(3600.0))  # a long window
        await eventually(lambda: _async(not running.app._server.accepting))  # type: ignore[union-attr]
        draining = await running.pool.fetchval(
            "SELECT draining FROM nodes WHERE node_id = $1", running.app.settings.node_id
        )
        assert draining is True  # GET /cluster/nodes shows it
        for n in range(3):  # still served while waiting for its turn
            await ws.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
            assert (await _answer_to(ws, f"hb-{n}"))[:2] == [3, f"hb-{n}"]
        running.app._server.hurry_drain()  # type: ignore[union-attr]  # a second SIGTERM
        report = await asyncio.wait_for(drain, 30)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1012 and report.closed_idle == 1


async def _async(value: bool) -> bool:
    return value


async def _all_connected(pool: object, ids: list[str]) -> bool:
    count = await pool.fetchval(  # type: ignore[attr-defined]
        "SELECT count(*) FROM chargers WHERE charge_point_id = ANY($1) AND connected", ids
    )
    return bool(count == len(ids))


async def test_bytes_the_kernel_holds_for_a_busy_loop_count_as_unread() -> None:
    """A frame still in the socket's receive buffer keeps the connection from idle."""
    transports: list[asyncio.Transport] = []

    class Paused(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # as if the loop were too busy to read
            transports.append(transport)

    server = await asyncio.get_running_loop().create_server(Paused, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await eventually(lambda: _async(bool(transports)))
        assert _unread_bytes(transports[0]) == 0
        writer.write(b'[2,"1","Heartbeat",{}]')
        await writer.drain()
        await eventually(lambda: _async(_unread_bytes(transports[0]) == 22))
    finally:
        writer.close()
        server.close()
