"""Chargers for tests: the ``ocpp`` library's own charge points, of either version.

They are independent of the CSMS's code (same library, client side), so a test
that passes with them says the CSMS speaks the protocol, not just to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import ClientConnection, connect


class RawCharger:
    """A socket that sends exact frames, for the malformed-input cases."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, frame: str) -> None:
        await self.websocket.send(frame)

    async def exchange(self, frame: str, within: float = 5.0) -> Any:
        import json

        await self.websocket.send(frame)
        return json.loads(await asyncio.wait_for(self.websocket.recv(), within))

    async def answer_to(self, frame: str, within: float = 5.0) -> Any:
        """Send a CALL and return its answer, passing over the CSMS's own CALLs meanwhile
        (an accepted charger may get the post-boot capability probe first)."""
        import json

        message_id = json.loads(frame)[1]
        await self.websocket.send(frame)
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await self.websocket.recv())
                if message[0] != 2 and message[1] == message_id:
                    return message


@contextlib.asynccontextmanager
async def raw_charger(
    base_url: str,
    charge_point_id: str,
    subprotocol: str = "ocpp1.6",
    *,
    headers: Mapping[str, str] | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> AsyncIterator[RawCharger]:
    async with connect(
        f"{base_url}/{charge_point_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=ssl,
    ) as ws:
        yield RawCharger(ws)


@contextlib.asynccontextmanager
async def _running(charger: Any) -> AsyncIterator[Any]:
    task = asyncio.create_task(charger.start())
    try:
        yield charger
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@contextlib.asynccontextmanager
async def _library_charger(
    base_url: str,
    charge_point_id: str,
    subprotocol: str,
    cls: Any,
    headers: Mapping[str, str] | None,
    ssl: ssl_module.SSLContext | None,
) -> AsyncIterator[Any]:
    async with connect(
        f"{base_url}/{charge_point_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=ssl,
    ) as ws:
        async with _running(cls(charge_point_id, ws, response_timeout=10)) as charger:
            yield charger


def charger_v16(
    base_url: str,
    charge_point_id: str,
    cls: type[ChargePoint16] = ChargePoint16,
    *,
    headers: Mapping[str, str] | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> contextlib.AbstractAsyncContextManager[Any]:
    """The ocpp library's 1.6 charge point (or ``cls``), connected and running."""
    return _library_charger(base_url, charge_point_id, "ocpp1.6", cls, headers, ssl)


def charger_v201(
    base_url: str,
    charge_point_id: str,
    cls: type[ChargePoint201] = ChargePoint201,
    *,
    headers: Mapping[str, str] | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> contextlib.AbstractAsyncContextManager[Any]:
    """The ocpp library's 2.0.1 charging station (or ``cls``), connected and running."""
    return _library_charger(base_url, charge_point_id, "ocpp2.0.1", cls, headers, ssl)
