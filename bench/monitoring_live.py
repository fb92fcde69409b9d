"""What live monitoring costs and how fast it reacts.

1. CPU per meter-sample event in the monitoring consumer (session tracker,
   stream notification, fan-out to subscribers), and per OCPP message for the
   metrics instrumentation: pure, in-process.
2. With a real CSMS (this process, fresh embedded PostgreSQL): latency from a
   charger's StatusNotification to the SSE event at a subscriber, ``GET
   /metrics`` scrape time, delay from a charger going mute (TCP open) to it
   being marked offline, and from a committed alert to its signed webhook.

    .venv/bin/python -m bench.monitoring_live
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect

from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.events import MeterSample, MeterSampled, SessionStarted
from csms.logs import configure_logging
from csms.monitoring import metrics
from csms.monitoring.alerts import AlertOpened, Severity
from csms.monitoring.progress import SessionTracker
from csms.monitoring.stream import StreamHub, notification_of, progress_notification
from csms.storage import api_keys, event_log
from csms.storage.embedded import stop_embedded
from tests.ocpp_clients import charger_v16


def pipeline_cost(events: int, subscribers: int) -> float:
    """µs per MeterSampled event through tracker + notification + hub (no I/O)."""
    tracker, hub = SessionTracker(), StreamHub()
    for i in range(subscribers):
        hub.subscribe([f"CP-{i}"], [])  # each follows one charger, like a mobile app
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for cp in range(100):
        tracker.apply(
            SessionStarted(
                charge_point_id=f"CP-{cp}", occurred_at=t0, evse_id=1, connector_id=1,
                transaction_id=str(cp), id_token="T", meter_start_wh=0.0,
            )
        )  # fmt: skip
    batch = []
    for n in range(events):
        at = t0 + timedelta(seconds=n)
        samples = (
            MeterSample(at, "Energy.Active.Import.Register", float(n), "Wh"),
            MeterSample(at, "Power.Active.Import", 7000.0, "W"),
            MeterSample(at, "SoC", 20 + n * 1e-4, "Percent"),
            MeterSample(at, "Voltage", 230.0, "V"),
        )
        batch.append(
            MeterSampled(
                charge_point_id=f"CP-{n % 100}", occurred_at=at, evse_id=1, connector_id=1,
                transaction_id=str(n % 100), samples=samples,
            )
        )  # fmt: skip
    started = time.perf_counter()
    for event in batch:
        progress, _ = tracker.apply(event)
        note = notification_of(event)
        if note is not None:
            hub.publish(note)
        if progress is not None:
            hub.publish(progress_notification(progress, event))
        for subscriber in hub._subscribers:  # drain, as the stream tasks would
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
    return (time.perf_counter() - started) / events * 1e6


def instrumentation_cost(messages: int) -> float:
    """µs per incoming OCPP message for its counter and latency histogram."""
    started = time.perf_counter()
    for _ in range(messages):
        metrics.MESSAGES.labels("in", "MeterValues", "ok").inc()
        metrics.HANDLER_SECONDS.labels("MeterValues").observe(0.001)
    return (time.perf_counter() - started) / messages * 1e6


def summary(label: str, values: list[float], unit: str = "ms") -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return (
        f"{label}: median {statistics.median(values):.2f} {unit}, p95 {p95:.2f} {unit}, "
        f"max {values[-1]:.2f} {unit} (n={len(values)})"
    )


async def stream_latency(app: Csms, base: str, key: str, runs: int) -> list[float]:
    received: asyncio.Queue[float] = asyncio.Queue()

    async def listen(response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.startswith("event: connector_status_changed"):
                received.put_nowait(time.perf_counter())

    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client,
        client.stream("GET", "/api/v1/stream", params={"charger": "BENCH-1"}) as response,
        charger_v16(app.ocpp_url.replace("localhost", "127.0.0.1"), "BENCH-1") as cp,
    ):
        task = asyncio.create_task(listen(response))
        await cp.call(call16.BootNotification(charge_point_vendor="B", charge_point_model="M"))
        latencies = []
        for n in range(runs):
            sent = time.perf_counter()
            status = "Available" if n % 2 else "Unavailable"
            notification = call16.StatusNotification(
                connector_id=1, error_code="NoError", status=status
            )
            await cp.call(notification)
            latencies.append((await asyncio.wait_for(received.get(), 5) - sent) * 1000)
        task.cancel()
    return latencies


async def silent_detection(app: Csms, runs: int) -> list[float]:
    delays = []
    boot = [2, "b", "BootNotification", {"chargePointVendor": "B", "chargePointModel": "M"}]
    for n in range(runs):
        cp_id = f"MUTE-{n}"
        url = f"{app.ocpp_url}/{cp_id}"
        ws = await connect(url, subprotocols=["ocpp1.6"], ping_interval=None)  # type: ignore[list-item]
        await ws.send(json.dumps(boot))
        await ws.recv()
        ws.transport.pause_reading()  # TCP stays open; no pong, no message
        muted = time.perf_counter()
        row = None
        while not row:  # offline as recorded in Postgres
            await asyncio.sleep(0.01)
            row = await app.pool.fetchval(
                "SELECT NOT connected FROM chargers WHERE charge_point_id = $1", cp_id
            )
        delays.append(time.perf_counter() - muted)
        ws.transport.abort()
    return delays


async def webhook_latency(app: Csms, base: str, key: str, runs: int) -> list[float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        await reader.readexactly(length)
        arrived.put_nowait(time.perf_counter())
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
        await c.post("/api/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/h"})
    now = datetime.now(UTC)
    latencies = []
    for n in range(runs):
        sent = time.perf_counter()
        alert = AlertOpened(
            charge_point_id="BENCH-1", occurred_at=now, alert_id=n, rule="bench",
            severity=Severity.WARNING, evse_id=None, connector_id=None, message="bench",
            first_seen=now, last_seen=now, count=1,
        )  # fmt: skip
        await event_log.append(app.pool, alert)  # committed, as fault detection does
        app.bus.publish(alert)
        latencies.append((await asyncio.wait_for(arrived.get(), 10) - sent) * 1000)
    server.close()
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    for subscribers in (0, 10, 100):
        cost = pipeline_cost(args.events, subscribers)
        print(
            f"monitoring consumer, {subscribers} stream subscribers: {cost:.1f} µs per meter event"
        )
    print(f"metrics instrumentation: {instrumentation_cost(args.events):.2f} µs per OCPP message")

    data_dir = Path(tempfile.mkdtemp(prefix="bench-monitoring-pg-"))
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir, log_level="warning",
        heartbeat_interval=1, monitoring_silence_factor=3.0,
        monitoring_liveness_check_interval=0.1, ping_interval=None,
    )  # fmt: skip
    configure_logging(LogFormat.CONSOLE, "warning")
    app = Csms(settings)
    await app.start()
    try:
        _, key = await api_keys.create(app.pool, "bench", "operator")
        port = app.api_url.rsplit(":", 1)[1].split("/")[0]
        base = f"http://127.0.0.1:{port}"
        latencies = await stream_latency(app, base, key, args.runs)
        print(summary("StatusNotification -> SSE event", latencies))
        async with httpx.AsyncClient(base_url=base) as client:
            scrapes = []
            for _ in range(50):
                started = time.perf_counter()
                (await client.get("/metrics")).raise_for_status()
                scrapes.append((time.perf_counter() - started) * 1000)
        print(summary("GET /metrics", scrapes))
        latencies = await webhook_latency(app, base, key, 50)
        print(summary("alert committed -> signed webhook received", latencies))
        delays = await silent_detection(app, 5)
        print(summary("mute charger (heartbeat 1 s, factor 3) -> offline", delays, "s"))
    finally:
        await app.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
