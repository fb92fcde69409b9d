"""Ingest benchmark: many chargers sending meter and status traffic as fast as answered.

    python -m bench.ingest [--chargers 500] [--duration 20] [--url ws://host:port/ocpp]

Without ``--url`` it starts ``csms`` as a separate process with a fresh embedded
Postgres in a temporary folder (so the load generator and the server do not
share a Python interpreter). Each charger (half 1.6J, half 2.0.1) boots, starts
a transaction, then loops: meter values inside the transaction (register,
power, current and voltage per phase: 8 samples) and every tenth call a status
notification. One call at a time per charger, as OCPP requires. At the end it
prints calls/s and latency percentiles, and checks that every sample sent was
stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

SAMPLES_PER_METER_VALUE = 8


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples_sent: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sampled_values(wh: float, v201: bool) -> list[dict[str, object]]:
    values: list[dict[str, object]] = [
        {"measurand": "Energy.Active.Import.Register", "value": wh},
        {"measurand": "Power.Active.Import", "value": 11000},
    ]
    for phase in ("L1", "L2", "L3"):
        values.append({"measurand": "Current.Import", "phase": phase, "value": 16.0})
        values.append({"measurand": "Voltage", "phase": f"{phase}-N", "value": 230.0})
    if not v201:
        for v in values:
            v["value"] = str(v["value"])
    return values


class Charger:
    def __init__(self, ws: ClientConnection, charger_id: str, v201: bool, stats: Stats) -> None:
        self.ws, self.id, self.v201, self.stats = ws, charger_id, v201, stats
        self._n = 0

    async def call(self, action: str, payload: dict[str, object], record: bool = True) -> object:
        self._n += 1
        message_id = str(self._n)
        started = time.perf_counter()
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        answer = json.loads(await self.ws.recv())
        if record:
            self.stats.latencies.append(time.perf_counter() - started)
        if answer[0] != 3 or answer[1] != message_id:
            self.stats.errors += 1
            return None
        return answer[2]

    async def run(self) -> None:
        """Send until cancelled."""
        if self.v201:
            await self.call(
                "BootNotification",
                {"chargingStation": {"model": "B", "vendorName": "Bench"}, "reason": "PowerUp"},
                False,
            )
            tx = f"{self.id}-tx"
            await self.call(
                "TransactionEvent",
                {
                    "eventType": "Started",
                    "timestamp": _now(),
                    "triggerReason": "CablePluggedIn",
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": tx},
                    "evse": {"id": 1, "connectorId": 1},
                },
                False,
            )
        else:
            await self.call(
                "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B"}, False
            )
            started = await self.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": _now()},
                False,
            )
            tx = started["transactionId"] if isinstance(started, dict) else 0
        wh, seq = 0.0, 0
        while True:
            seq += 1
            wh += 30.0
            if seq % 10 == 0:
                status = (
                    {
                        "timestamp": _now(),
                        "connectorStatus": "Occupied",
                        "evseId": 1,
                        "connectorId": 1,
                    }
                    if self.v201
                    else {
                        "connectorId": 1,
                        "errorCode": "NoError",
                        "status": "Charging",
                        "timestamp": _now(),
                    }
                )
                await self.call("StatusNotification", status)
                continue
            meter = [{"timestamp": _now(), "sampledValue": _sampled_values(wh, self.v201)}]
            if self.v201:
                await self.call(
                    "TransactionEvent",
                    {
                        "eventType": "Updated",
                        "timestamp": _now(),
                        "triggerReason": "MeterValuePeriodic",
                        "seqNo": seq,
                        "transactionInfo": {"transactionId": tx},
                        "meterValue": meter,
                    },
                )
            else:
                await self.call(
                    "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": meter}
                )
            self.stats.samples_sent += SAMPLES_PER_METER_VALUE


async def _one_charger(url: str, index: int, stats: Stats, ready: asyncio.Barrier) -> None:
    v201 = index % 2 == 1
    charger_id = f"BENCH-{index:05d}"
    async with connect(
        f"{url}/{charger_id}",
        subprotocols=["ocpp2.0.1" if v201 else "ocpp1.6"],  # type: ignore[list-item]
        ping_interval=None,
        max_queue=4,
    ) as ws:
        await ready.wait()
        await Charger(ws, charger_id, v201, stats).run()


async def _start_server(data_dir: str) -> tuple[asyncio.subprocess.Process, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CSMS_LOG_LEVEL"] = "warning"
    env["CSMS_API_PORT"] = "0"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        data_dir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    url = line.split("connect to ")[1].split("/<charge_point_id>")[0]
    dsn = f"postgresql://postgres@/csms?host={data_dir}/pgdata"
    return process, url, dsn


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (bounded)")
    parser.add_argument("--url", help="an already running CSMS (default: start one)")
    parser.add_argument("--database-url", help="its database, to check persistence")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
        process = None
        if args.url:
            url, dsn = args.url, args.database_url
        else:
            process, url, dsn = await _start_server(tmp)
        try:
            stats = Stats()
            ready = asyncio.Barrier(args.chargers + 1)
            loop_start = time.perf_counter()
            tasks = [
                asyncio.create_task(_one_charger(url, i, stats, ready))
                for i in range(args.chargers)
            ]
            await ready.wait()
            # Every charger is connected: the measured window starts now, and ends by cancelling.
            began = time.perf_counter()
            await asyncio.sleep(args.duration)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            elapsed = time.perf_counter() - began
            lat = sorted(stats.latencies)
            rate = len(lat) / elapsed
            print(f"chargers: {args.chargers} (half 1.6J, half 2.0.1)")
            print(f"connect time: {began - loop_start:.1f}s")
            print(
                f"calls: {len(lat)} in {elapsed:.1f}s = {rate:.0f} calls/s; errors: {stats.errors}"
            )
            if lat:
                p50, p95, p99 = (_percentile(lat, q) * 1000 for q in (50, 95, 99))
                print(
                    f"latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
                    f"max {lat[-1] * 1000:.1f}"
                )
            if dsn:
                await asyncio.sleep(0.5)
                conn = await asyncpg.connect(dsn)
                stored = await conn.fetchval("SELECT count(*) FROM meter_samples")
                await conn.close()
                # A call cancelled at the deadline may have been stored without being counted.
                print(f"samples sent (answered): {stats.samples_sent}; stored: {stored}")
        finally:
            if process is not None:
                process.terminate()
                await process.wait()


if __name__ == "__main__":
    asyncio.run(main())
