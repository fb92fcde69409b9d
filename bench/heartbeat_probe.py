"""One 1.6J charger that stays connected and sends a Heartbeat every 100 ms.

bench.connections runs it beside the fleet: its round trips are what an
already-connected charger sees while thousands of others connect and boot
(one call at a time, as OCPP requires: a slow answer delays the next beat).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.connection_fleet import answer_to, boot_payload

INTERVAL = 0.1


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class HeartbeatProbe:
    def __init__(self, url: str, charge_point_id: str) -> None:
        self.url, self.id = url, charge_point_id
        self.samples: list[float] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._answers: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._n = 0

    async def start(self) -> None:
        self._ws = await connect(
            f"{self.url}/{self.id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            compression=None, ping_interval=None, open_timeout=60,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self._ws))
        answer = await self._call("BootNotification", boot_payload(False))
        if answer[0] != 3 or answer[2].get("status") != "Accepted":
            raise RuntimeError(f"probe charger not accepted: {answer}")
        self._task = asyncio.create_task(self._beat())

    def mark(self) -> None:
        """Start a new measuring window."""
        self.samples = []

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        return (
            f"{len(self.samples)} beats, p50 {percentile(self.samples, 50) * 1000:.0f} ms, "
            f"p99 {percentile(self.samples, 99) * 1000:.0f} ms, "
            f"max {max(self.samples) * 1000:.0f} ms"
        )

    async def _beat(self) -> None:
        while True:
            started = time.perf_counter()
            await self._call("Heartbeat", {})
            self.samples.append(time.perf_counter() - started)
            await asyncio.sleep(max(0.0, INTERVAL - (time.perf_counter() - started)))

    async def _call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        assert self._ws is not None
        self._n += 1
        message_id = f"probe-{self._n}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._answers[message_id] = future
        await self._ws.send(json.dumps([2, message_id, action, payload]))
        try:
            return await future
        finally:
            self._answers.pop(message_id, None)

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] == 2:
                await ws.send(json.dumps([3, frame[1], answer_to(frame[2], frame[3])]))
            elif (future := self._answers.get(frame[1])) is not None and not future.done():
                future.set_result(frame)

    async def stop(self) -> None:
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
        if self._ws is not None:
            await self._ws.close()
