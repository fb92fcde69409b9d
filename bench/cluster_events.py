"""How fast committed events reach subscribers through the cluster-wide feed.

Two CSMS nodes in this process on one fresh embedded Postgres; a charger on
node B sends StatusNotifications one at a time. Measured from sending each to:

* an in-process bus subscriber on node B (same node) and on node A (the other);
* an SSE client of ``GET /api/v1/stream`` on node B and on node A;

then a flood: ``--flood`` events written by concurrent writers, time until a
subscriber on the other node has all of them (events/s through the feed).

    .venv/bin/python -m bench.cluster_events [--runs 200] [--flood 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from ocpp.v16 import call as call16

from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.events import ConnectorStatus, ConnectorStatusChanged
from csms.logs import configure_logging
from csms.storage import api_keys, event_log
from csms.storage.embedded import stop_embedded
from tests.ocpp_clients import charger_v16


def summary(label: str, values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"{label}: median {statistics.median(values):.2f} ms, p99 {p99:.2f} ms, "
        f"max {values[-1]:.2f} ms (n={len(values)})"
    )


async def sse(node: Csms, key: str, arrivals: asyncio.Queue[float]) -> None:
    port = node.api_url.rsplit(":", 1)[1].split("/")[0]
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as c,
        c.stream("GET", "/api/v1/stream", params={"charger": "BENCH-1"}) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("event: connector_status_changed"):
                arrivals.put_nowait(time.perf_counter())


async def bus_listener(node: Csms, arrivals: asyncio.Queue[float]) -> None:
    subscription = node.bus.subscribe("bench")
    while True:
        event = await subscription.get()
        if event.type == "connector_status_changed" and event.charge_point_id == "BENCH-1":
            arrivals.put_nowait(time.perf_counter())


async def latencies(a: Csms, b: Csms, runs: int) -> None:
    _, key = await api_keys.create(a.pool, "bench", "read-only")
    queues = {name: asyncio.Queue[float]() for name in ("bus B", "bus A", "SSE B", "SSE A")}
    tasks = [
        asyncio.create_task(bus_listener(b, queues["bus B"])),
        asyncio.create_task(bus_listener(a, queues["bus A"])),
        asyncio.create_task(sse(b, key, queues["SSE B"])),
        asyncio.create_task(sse(a, key, queues["SSE A"])),
    ]
    await asyncio.sleep(0.5)  # the streams are connected
    measured: dict[str, list[float]] = {name: [] for name in queues}
    async with charger_v16(b.ocpp_url.replace("localhost", "127.0.0.1"), "BENCH-1") as cp:
        await cp.call(call16.BootNotification(charge_point_vendor="B", charge_point_model="M"))
        for n in range(runs):
            sent = time.perf_counter()
            status = "Available" if n % 2 else "Unavailable"
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status=status)
            )
            for name, queue in queues.items():
                measured[name].append((await asyncio.wait_for(queue.get(), 10) - sent) * 1000)
    for task in tasks:
        task.cancel()
    where = {"B": "same node", "A": "other node"}
    for name, values in measured.items():
        print(summary(f"StatusNotification -> {name} ({where[name[-1]]})", values))


async def flood(a: Csms, b: Csms, total: int, writers: int = 8) -> None:
    subscription = a.bus.subscribe("flood")
    per_writer = total // writers

    async def write(w: int) -> None:
        for n in range(per_writer):
            event = ConnectorStatusChanged(
                charge_point_id=f"FLOOD-{w}", occurred_at=datetime.now(UTC), evse_id=1,
                connector_id=n, status=ConnectorStatus.AVAILABLE,
            )  # fmt: skip
            await event_log.append(b.pool, event)
            b.bus.publish(event)

    started = time.perf_counter()
    writing = asyncio.gather(*(write(w) for w in range(writers)))
    got = 0
    while got < per_writer * writers:
        event = await asyncio.wait_for(subscription.get(), 30)
        got += event.charge_point_id.startswith("FLOOD-")
    await writing
    elapsed = time.perf_counter() - started
    print(
        f"flood: {got} events from {writers} writers on node B seen on node A in "
        f"{elapsed:.1f} s ({got / elapsed:.0f} events/s; "
        f"{subscription.caught_up_from_table} read back from the table)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--flood", type=int, default=20_000)
    args = parser.parse_args()
    configure_logging(LogFormat.CONSOLE, "warning")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-events-pg-"))
    base = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir, log_level="warning"
    )
    a = Csms(dataclasses.replace(base, node_id="bench-a"))
    await a.start()
    b = Csms(
        dataclasses.replace(base, node_id="bench-b", database_url=a.dsn, migrate_on_start=False)
    )
    try:
        await b.start()
        await latencies(a, b, args.runs)
        if args.flood:
            await flood(a, b, args.flood)
    finally:
        await b.stop()
        await a.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
