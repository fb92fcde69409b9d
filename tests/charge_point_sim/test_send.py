"""A simulated charger's CALLs when the caller goes away mid-call.

Against a loopback WebSocket server that answers every CALL except Heartbeat, so
one call can be left hanging on purpose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ocpp.v16 import call as call16
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock
from charge_point_sim.stats import Stats
from charge_point_sim.v16 import V16Charger
from tests.charge_point_sim.support import eventually


async def _answer_all_but_heartbeats(ws: ServerConnection) -> None:
    async for raw in ws:
        kind, unique_id, action, _ = json.loads(raw)
        if kind != 2 or action == "Heartbeat":
            continue
        answer: dict[str, object] = {}
        if action == "BootNotification":
            answer = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}
        await ws.send(json.dumps([3, unique_id, answer]))


@asynccontextmanager
async def connected_charger() -> AsyncIterator[V16Charger]:
    async with serve(
        _answer_all_but_heartbeats, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        cfg = ChargerConfig("CP1", url=f"ws://127.0.0.1:{port}", connectors=1)
        charger = V16Charger(cfg, SimClock(1), Stats())
        stop = asyncio.Event()
        running = asyncio.ensure_future(charger.run(stop))
        try:
            await eventually(lambda: asyncio.sleep(0, charger.online and charger.booted))
            await eventually(lambda: asyncio.sleep(0, not charger._call_lock.locked()))
            yield charger
        finally:
            stop.set()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


async def test_a_cancelled_send_takes_its_call_with_it() -> None:
    """The next call is not stuck behind an abandoned one for the response timeout.

    The simulator once cancelled the task waiting in ``send`` (a lost link cancels
    the heartbeat loop) but not the CALL itself, which kept the ocpp call lock for
    its whole response timeout (30 s): transaction messages of the next connection
    queued behind it and a 2 s CI run lost them.
    """
    async with connected_charger() as charger:
        abandoned = asyncio.ensure_future(charger.send(call16.Heartbeat()))
        await eventually(lambda: asyncio.sleep(0, charger._call_lock.locked()))
        abandoned.cancel()
        await asyncio.gather(abandoned, return_exceptions=True)
        status = call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        answered = await asyncio.wait_for(charger.send(status), timeout=5)
        assert answered is not None
