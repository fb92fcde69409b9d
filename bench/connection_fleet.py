"""Generator processes for bench.connections: thousands of idle chargers per process.

Each charger is one task and one socket (``websockets`` client, no client
pings; compression not offered unless asked, to show what it costs the
server): it connects (retrying after 0.5-2 s on a refused or failed
handshake, as chargers do), sends its BootNotification, then a Heartbeat
every ``heartbeat`` seconds (jittered), and answers what the CSMS asks (the
post-boot capability probe: GetConfiguration / GetVariables with valid
answers, anything else ``{"status": "Accepted"}``).

The parent drives a generator through a pipe: ``("connect", rate)`` starts (or
restarts) every charger, at most ``rate`` new sockets a second per process (0:
all at once) and answers when all are Accepted (or after ``timeout``) with the
per-charger figures; ``("close",)`` closes every socket; ``("stop",)`` ends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

_ids = itertools.count()


def boot_payload(v201: bool) -> dict[str, Any]:
    if v201:
        return {"reason": "PowerUp", "chargingStation": {"model": "Idle", "vendorName": "Bench"}}
    return {"chargePointVendor": "Bench", "chargePointModel": "Idle"}


def answer_to(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid answer to a CSMS call (what an idle charger would say)."""
    if action == "GetConfiguration":  # 1.6: the probe asks for keys we do not keep
        return {"unknownKey": list(payload.get("key") or [])}
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "UnknownVariable",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in payload.get("getVariableData", [])
            ]
        }
    return {"status": "Accepted"}


@dataclass
class Outcome:
    """One charger's last (re)connection, as reported to the parent."""

    accepted_at: float | None = None  # time.time() of the Accepted boot answer
    connect_seconds: float = 0.0  # from its start to the Accepted answer (retries included)
    boot_rtt: float = 0.0  # the BootNotification round trip on the socket that got it
    attempts: int = 0
    rejected: int = 0  # boots answered Pending/Rejected
    errors: dict[str, int] = field(default_factory=dict)


class IdleCharger:
    def __init__(
        self, url: str, charge_point_id: str, v201: bool, heartbeat: float, compression: bool
    ) -> None:
        self.url, self.id, self.v201, self.heartbeat = url, charge_point_id, v201, heartbeat
        self.compression = compression  # offer permessage-deflate, as many clients do
        self.outcome = Outcome()
        self.accepted = asyncio.Event()
        self.ws: ClientConnection | None = None

    def _error(self, name: str) -> None:
        self.outcome.errors[name] = self.outcome.errors.get(name, 0) + 1

    async def run(self) -> None:
        started = time.monotonic()
        self.outcome = Outcome()
        while True:
            self.outcome.attempts += 1
            try:
                self.ws = await connect(
                    f"{self.url}/{self.id}",
                    subprotocols=["ocpp2.0.1" if self.v201 else "ocpp1.6"],  # type: ignore[list-item]
                    compression="deflate" if self.compression else None,
                    ping_interval=None,
                    open_timeout=120,
                    close_timeout=2,
                    max_queue=4,
                )
            except (OSError, InvalidHandshake, TimeoutError) as error:
                self._error(type(error).__name__)
                await asyncio.sleep(random.uniform(0.5, 2.0))
                continue
            try:
                await self._serve(self.ws, started)
            except ConnectionClosed:
                self._error("ConnectionClosed")
            finally:
                self.accepted.clear()
                await self.ws.close()
            await asyncio.sleep(random.uniform(0.5, 2.0))

    async def _serve(self, ws: ClientConnection, started: float) -> None:
        sent = time.monotonic()
        boot_id = await self._send_call(ws, "BootNotification", boot_payload(self.v201))
        while True:
            answer = await self._until_answer(ws, boot_id, None)
            status = answer.get("status") if answer else None
            if status == "Accepted":
                break
            self.outcome.rejected += 1
            await asyncio.sleep(min(float((answer or {}).get("interval", 5)), 5.0))
            sent = time.monotonic()
            boot_id = await self._send_call(ws, "BootNotification", boot_payload(self.v201))
        now = time.monotonic()
        self.outcome.accepted_at = time.time()
        self.outcome.connect_seconds = now - started
        self.outcome.boot_rtt = now - sent
        self.accepted.set()
        pending: str | None = None
        due = now + self.heartbeat * random.uniform(0.1, 1.0)
        while True:
            if pending is None and time.monotonic() >= due:
                pending = await self._send_call(ws, "Heartbeat", {})
                due = time.monotonic() + self.heartbeat * random.uniform(0.8, 1.2)
            answered = await self._until_answer(ws, pending, due)
            if answered is not None:
                pending = None

    async def _send_call(self, ws: ClientConnection, action: str, payload: dict[str, Any]) -> str:
        message_id = str(next(_ids))
        await ws.send(json.dumps([2, message_id, action, payload]))
        return message_id

    async def _until_answer(
        self, ws: ClientConnection, message_id: str | None, deadline: float | None
    ) -> dict[str, Any] | None:
        """Read frames (answering CSMS calls) until our answer or ``deadline``."""
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(timeout):
                    raw = await ws.recv()
            except TimeoutError:
                return None
            frame = json.loads(raw)
            if frame[0] == 2:
                await ws.send(json.dumps([3, frame[1], answer_to(frame[2], frame[3])]))
            elif frame[1] == message_id:
                if frame[0] == 4:
                    self._error(f"CALLERROR {frame[2]}")
                    return {}
                result: dict[str, Any] = frame[2]
                return result


async def _generator(
    pipe: Connection, url: str, ids: list[str], heartbeat: float, compression: bool
) -> None:
    chargers = [
        IdleCharger(url, cid, v201=n % 2 == 1, heartbeat=heartbeat, compression=compression)
        for n, cid in enumerate(ids)
    ]
    tasks: list[asyncio.Task[None]] = []
    while True:
        command = await asyncio.to_thread(pipe.recv)
        if command[0] == "connect":
            rate, timeout = float(command[1]), float(command[2])
            for task in tasks:
                task.cancel()
            tasks = []
            for charger in chargers:
                tasks.append(asyncio.create_task(charger.run()))
                if rate > 0:
                    await asyncio.sleep(1 / rate)
            waits = [asyncio.create_task(c.accepted.wait()) for c in chargers]
            _, late = await asyncio.wait(waits, timeout=timeout)
            for wait in late:
                wait.cancel()
            pipe.send([dataclass_dict(c.outcome) for c in chargers])
        elif command[0] == "close":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            await asyncio.gather(
                *(c.ws.close() for c in chargers if c.ws is not None), return_exceptions=True
            )
            pipe.send("closed")
        elif command[0] == "stop":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send("stopped")
            return


def dataclass_dict(outcome: Outcome) -> dict[str, Any]:
    return {
        "accepted_at": outcome.accepted_at,
        "connect_seconds": outcome.connect_seconds,
        "boot_rtt": outcome.boot_rtt,
        "attempts": outcome.attempts,
        "rejected": outcome.rejected,
        "errors": outcome.errors,
    }


def generator_main(
    pipe: Connection, url: str, ids: list[str], heartbeat: float, compression: bool
) -> None:
    """Entry point of one generator process."""
    asyncio.run(_generator(pipe, url, ids, heartbeat, compression))
