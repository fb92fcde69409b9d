"""Ingest benchmark: a charger fleet sending meter and status traffic, closed or open loop.

Closed loop (the default) -- every charger sends its next call as soon as the
previous one is answered, as fast as the CSMS goes:

    python -m bench.ingest [--chargers 500] [--duration 20] [--url ws://host:port/ocpp]

Each charger (half 1.6J, half 2.0.1) boots, starts a transaction, then loops:
meter values inside the transaction (register, power, current and voltage per
phase: 8 samples) and every tenth call a status notification. At the end it
prints calls/s and latency percentiles, and checks that every sample sent was
stored. Without ``--url`` it starts ``csms`` (``--workers N``) as a separate
process with a fresh embedded Postgres in a temporary folder.

Open loop -- calls fall due on a schedule at a fleet rate, whatever the answers:

    python -m bench.ingest --rate 300 [--target both|toy|csms] [--workers 2]
    python -m bench.ingest --rates sat,150,300,half [--duration 20]

1,000 chargers by default, a realistic mix (bench.ocpp_load), one outstanding
call per charger, latency from the scheduled time (bench.open_loop); the same
load against the in-memory toy CSMS (bench.toy_csms) and the CSMS in one run,
and the ratio. ``sat`` offers far more than either can take (the achieved rate
is the saturated throughput), ``half`` is half the toy's saturated rate.
docs/benchmarks.md explains how to run and read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from bench import ingest_open
from bench.ingest_open import parse_rates
from bench.load_targets import start_csms
from bench.ocpp_load import answer_server_call

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
        while answer[0] == 2:  # a call of the CSMS (its post-boot probe): answered, not counted
            await self.ws.send(json.dumps([3, answer[1], answer_server_call(answer[2], answer[3])]))
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
            tx: object = f"{self.id}-tx"
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


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, help="fleet size (closed 500, open 1000)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured s (per rate)")
    parser.add_argument("--workers", type=int, default=1, help="start csms --workers N")
    closed = parser.add_argument_group("closed loop")
    closed.add_argument("--url", help="an already running CSMS (default: start one)")
    closed.add_argument("--database-url", help="its database, to check persistence")
    opened = parser.add_argument_group("open loop (--rate or --rates)")
    rates = opened.add_mutually_exclusive_group()
    rates.add_argument("--rate", type=parse_rates, dest="rates", help="calls/s of the fleet")
    rates.add_argument(
        "--rates", type=parse_rates, help="a sweep: numbers, sat (saturate), half (toy sat / 2)"
    )
    opened.add_argument("--target", choices=("both", "toy", "csms"), default="both")
    opened.add_argument(
        "--generators", type=int, default=1, help="load generator processes (default 1)"
    )
    opened.add_argument("--warmup", type=float, default=2.0, help="s run before measuring")
    opened.add_argument("--arrivals", choices=("poisson", "even"), default="poisson")
    opened.add_argument("--timeout", type=float, default=10.0, help="s to wait for an answer")
    opened.add_argument(
        "--saturate-per-charger",
        type=float,
        default=10.0,
        help="calls/s per charger offered by 'sat' (default 10: far beyond any server here)",
    )
    opened.add_argument(
        "--compression",
        choices=("none", "deflate"),
        default="none",
        help="offer permessage-deflate (most charger firmware does not; default none)",
    )
    opened.add_argument("--seed", type=int, default=1)
    opened.add_argument("--csms-log", help="keep a copy of the CSMS's log (warnings, JSON)")
    opened.add_argument(
        "--csms-python",
        help="run csms with this interpreter (another checkout's venv: before/after in one go)",
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.rates is None:
        args.chargers = args.chargers or 500
        asyncio.run(closed_loop(args))
        return
    args.chargers = args.chargers or 1000
    args.compression = None if args.compression == "none" else args.compression
    sys.exit(asyncio.run(ingest_open.run(args)))


async def closed_loop(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
        target = None
        if args.url:
            url, dsn = args.url, args.database_url
        else:
            target = await start_csms(Path(tmp), args.workers)
            url, dsn = target.url, target.dsn
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
            if target is not None:
                await target.stop()


if __name__ == "__main__":
    main()
