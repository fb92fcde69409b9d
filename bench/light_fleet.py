"""A light charger fleet for cluster benchmarks: thousands of sockets in one process.

Each charger (1.6J or 2.0.1) connects, boots, then sends a Heartbeat or a
StatusNotification every ``interval`` seconds (jittered), one call at a time,
and answers every call of the CSMS with ``{"status": "Accepted"}`` (valid for
DataTransfer in both versions). When its socket closes it reconnects after a
random 0.1-1 s, as a charger does, and resends the call left unanswered.

What it counts is what a rolling restart must get right: calls sent, calls
answered, and calls whose socket closed before their answer came (unanswered;
resent after the reconnect).
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import random
import sys
import termios
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

_ids = itertools.count()
CALL_TIMEOUT = 60.0  # seconds a charger waits for an answer before it reconnects


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _boot(v201: bool) -> tuple[str, dict[str, Any]]:
    if v201:
        return "BootNotification", {
            "reason": "PowerUp",
            "chargingStation": {"model": "Light", "vendorName": "Bench"},
        }
    return "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Light"}


def _status(v201: bool) -> tuple[str, dict[str, Any]]:
    if v201:
        return "StatusNotification", {
            "timestamp": _now(),
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        }
    return "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@dataclass
class FleetStats:
    sent: int = 0
    answered: int = 0
    unanswered: int = 0  # the socket closed before the answer (the call is resent)
    unanswered_sent_lagging: int = 0  # of those: sent with the CSMS's frames unread
    errors: int = 0  # CALLERROR answers
    close_codes: dict[int, int] = field(default_factory=dict)
    commands_answered: int = 0
    timeouts: int = 0  # calls not answered within CALL_TIMEOUT
    failures: dict[str, int] = field(default_factory=dict)  # unexpected errors, by type


class LightCharger:
    def __init__(self, url: str, charge_point_id: str, v201: bool, interval: float) -> None:
        self.url, self.id, self.v201, self.interval = url, charge_point_id, v201, interval
        self.online = asyncio.Event()  # booted on the current socket
        self.online_since = 0.0  # time.monotonic() of the last boot answer
        self.stopping = False
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}

    async def run(self, stats: FleetStats) -> None:
        retry_call: tuple[str, dict[str, Any]] | None = None
        while not self.stopping:
            try:
                ws = await connect(
                    f"{self.url}/{self.id}",
                    subprotocols=["ocpp2.0.1" if self.v201 else "ocpp1.6"],  # type: ignore[list-item]
                    ping_interval=None,
                    open_timeout=60,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                await asyncio.sleep(random.uniform(0.1, 1.0))
                continue
            reader = asyncio.create_task(self._read(ws, stats))
            try:
                await self._call(ws, stats, *_boot(self.v201))
                self.online_since = time.monotonic()
                self.online.set()
                while not self.stopping:
                    if retry_call is None:
                        # Idle until the next call, unless the socket closes meanwhile.
                        pause = self.interval * random.uniform(0.5, 1.5)
                        await asyncio.wait({reader}, timeout=pause)
                        if reader.done():
                            break
                        retry_call = (
                            _status(self.v201) if random.random() < 0.5 else ("Heartbeat", {})
                        )
                    await self._call(ws, stats, *retry_call)
                    retry_call = None
            except (ConnectionClosed, ConnectionError):
                pass
            except TimeoutError:  # no answer within CALL_TIMEOUT: reconnect, as chargers do
                stats.timeouts += 1
            except Exception as error:  # counted and survived: the fleet must not shrink
                name = type(error).__name__
                stats.failures[name] = stats.failures.get(name, 0) + 1
            finally:
                self.online.clear()
                reader.cancel()
                await ws.close()
            code = ws.close_code if ws.close_code is not None else 1006
            stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
            if not self.stopping:
                await asyncio.sleep(random.uniform(0.1, 1.0))

    async def _call(
        self, ws: ClientConnection, stats: FleetStats, action: str, payload: dict[str, Any]
    ) -> list[Any]:
        message_id = str(next(_ids))
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = answer
        # Bytes already waiting unread in our socket (with thousands of chargers in one
        # process, the fleet's own loop lags): the CSMS's close may be among them.
        lagging = _unread_bytes(ws) > 0
        try:
            # A send refused because the close frame is already in is not a call sent.
            await ws.send(json.dumps([2, message_id, action, payload]))
        except (ConnectionClosed, ConnectionError):
            self._pending.pop(message_id, None)
            raise
        stats.sent += 1
        try:
            frame = await asyncio.wait_for(answer, CALL_TIMEOUT)
        except (ConnectionClosed, ConnectionError):
            stats.unanswered += 1
            stats.unanswered_sent_lagging += lagging
            raise
        finally:
            self._pending.pop(message_id, None)
        stats.answered += 1
        if frame[0] == 4:
            stats.errors += 1
        return frame

    async def _read(self, ws: ClientConnection, stats: FleetStats) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:  # a command: accepted
                    await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    stats.commands_answered += 1
                elif (future := self._pending.get(frame[1])) is not None and not future.done():
                    future.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))


def _unread_bytes(ws: ClientConnection) -> int:
    sock = ws.transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        pending = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):  # ValueError: the socket is closed already (fd -1)
        return 0
    return int.from_bytes(pending, sys.byteorder, signed=True)


class LightFleet:
    def __init__(self, url: str, count: int, interval: float, prefix: str = "LF") -> None:
        self.chargers = [
            LightCharger(url, f"{prefix}-{n:05d}", v201=n % 2 == 0, interval=interval)
            for n in range(count)
        ]
        self.stats = FleetStats()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, connect_rate: float = 500.0) -> None:
        """Start every charger, at most ``connect_rate`` new ones a second."""
        for charger in self.chargers:
            self._tasks.append(asyncio.create_task(charger.run(self.stats)))
            await asyncio.sleep(1 / connect_rate)

    def offline(self) -> list[LightCharger]:
        return [c for c in self.chargers if not c.online.is_set()]

    async def stop(self) -> None:
        for charger in self.chargers:
            charger.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
