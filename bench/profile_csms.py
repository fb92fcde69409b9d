"""Profile the CSMS's event loop under a well-behaved charger fleet (docs/profiling.md).

    python -m bench.profile_csms [--chargers 200] [--duration 15] [--rate 0]
                                 [--py-spy profile.txt] [--env CSMS_X=y ...]

Starts ``csms`` as a subprocess (fresh embedded Postgres in a temporary folder),
connects the fleet, loads it for ``--duration`` seconds and prints calls/s,
latency percentiles, the CSMS's event-loop lag (``csms_event_loop_lag_*`` from
its /metrics) and, with ``--py-spy``, the top of a py-spy profile of the CSMS
process taken during the load (the collapsed stacks are kept in that file).

Unlike ``bench.ingest``, every charger behaves as a strict client would: it
answers the calls the CSMS sends it (the post-boot capability probe, a
GetTransactionStatus) instead of taking them for the answer to its own call,
keeps its 2.0.1 ``seqNo`` contiguous and reports an energy register that grows
at a plausible 7 kW, so the profile shows the charger path and not alerts
about impossible jumps. Half the chargers speak 1.6J, half 2.0.1; nine calls in
ten are meter values in a transaction (8 samples), one a status notification.
``--rate R`` paces the fleet at R calls/s in total (open loop per charger, one
outstanding call each); 0 sends as fast as answered (closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from websockets.asyncio.client import ClientConnection, connect

SAMPLES = 8
SETTLE_S = 2.0  # after every charger booted: the CSMS's post-boot probes run, no load yet
GO = asyncio.Event()  # set once settled: the measured window starts
POWER_W = 7000.0


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    csms_calls_answered: int = 0
    samples_sent: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meter(wh: float, v201: bool) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = [
        {"measurand": "Energy.Active.Import.Register", "value": round(wh, 1)},
        {"measurand": "Power.Active.Import", "value": POWER_W},
    ]
    for phase in ("L1", "L2", "L3"):
        values.append({"measurand": "Current.Import", "phase": phase, "value": 10.1})
        values.append({"measurand": "Voltage", "phase": f"{phase}-N", "value": 230.0})
    if not v201:
        values = [{**v, "value": str(v["value"])} for v in values]
    return [{"timestamp": _now(), "sampledValue": values}]


_ANSWERS = {  # what a simple charger answers to the calls the CSMS may send it
    "GetTransactionStatus": {"messagesInQueue": False},
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "GetVariables": None,  # built from the request below
}


class Charger:
    def __init__(self, ws: ClientConnection, index: int, stats: Stats) -> None:
        self.ws, self.stats = ws, stats
        self.v201 = index % 2 == 1
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self.reader = asyncio.create_task(self._read())
        self.tx: Any = None

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] == 2:  # a call from the CSMS: answer it, as a charger must
                self.stats.csms_calls_answered += 1
                payload = _ANSWERS.get(frame[2], {})
                if frame[2] == "GetVariables":
                    payload = {
                        "getVariableResult": [
                            {**item, "attributeStatus": "UnknownVariable"}
                            for item in frame[3]["getVariableData"]
                        ]
                    }
                if frame[2] in _ANSWERS:
                    await self.ws.send(json.dumps([3, frame[1], payload]))
                else:
                    await self.ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
            elif frame[1] in self._waiting:
                self._waiting.pop(frame[1]).set_result(frame)

    async def call(self, action: str, payload: dict[str, Any], record: bool = True) -> Any:
        message_id = str(next(self._ids))
        answer = self._waiting[message_id] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await self.ws.send(json.dumps([2, message_id, action, payload]))
        frame = await answer
        if record:
            self.stats.latencies.append(time.perf_counter() - started)
        if frame[0] != 3:
            self.stats.errors += 1
            return None
        return frame[2]

    async def setup(self) -> None:
        """Boot and start a transaction (before the measured window)."""
        tx: Any
        if self.v201:
            boot = {"chargingStation": {"model": "P", "vendorName": "Profile"}, "reason": "PowerUp"}
            await self.call("BootNotification", boot, False)
            tx = f"{id(self):x}-tx"
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
            boot16 = {"chargePointVendor": "Profile", "chargePointModel": "P"}
            await self.call("BootNotification", boot16, False)
            started = await self.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "PROFILE", "meterStart": 0, "timestamp": _now()},
                False,
            )
            tx = started["transactionId"] if isinstance(started, dict) else 0
        self.tx = tx

    async def run(self, period: float) -> None:
        tx = self.tx
        began, seq = time.monotonic(), 0
        next_at = began + random.uniform(0, period)
        for n in itertools.count(1):
            if period:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += period
            if n % 10 == 0:
                await self.call(
                    "StatusNotification",
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
                    },
                )
                continue
            meter = _meter(POWER_W * (time.monotonic() - began) / 3600, self.v201)
            if self.v201:
                seq += 1
                await self.call(
                    "TransactionEvent",
                    {
                        "eventType": "Updated",
                        "timestamp": _now(),
                        "seqNo": seq,
                        "triggerReason": "MeterValuePeriodic",
                        "transactionInfo": {"transactionId": tx},
                        "meterValue": meter,
                    },
                )
            else:
                await self.call(
                    "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": meter}
                )
            self.stats.samples_sent += SAMPLES


async def _charger(
    url: str, index: int, stats: Stats, ready: asyncio.Barrier, period: float
) -> None:
    sub = "ocpp2.0.1" if index % 2 else "ocpp1.6"
    async with connect(
        f"{url}/PROF-{index:05d}",
        subprotocols=[sub],  # type: ignore[list-item]
        ping_interval=None,
    ) as ws:
        charger = Charger(ws, index, stats)
        await charger.setup()
        await ready.wait()
        await GO.wait()
        try:
            await charger.run(period)
        finally:
            charger.reader.cancel()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_csms(
    data_dir: str, api_port: int, extra_env: list[str], cprofile: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CSMS_LOG_LEVEL="warning", CSMS_API_PORT=str(api_port))
    env.update(item.split("=", 1) for item in extra_env)
    profiler = ["-m", "cProfile", "-o", cprofile] if cprofile else []
    process = subprocess.Popen(
        [
            sys.executable,
            *profiler,
            "-m",
            "csms",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            data_dir,
        ],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    return process, line.split("connect to ")[1].split("/<charge_point_id>")[0]


def _cpu_seconds(csms_pid: int, data_dir: str) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the CSMS process and by its Postgres.

    Less sensitive than calls/s to what else runs on a shared machine.
    """
    times = psutil.Process(csms_pid).cpu_times()
    csms = times.user + times.system
    postgres = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and data_dir in " ".join(proc.info["cmdline"] or ()):
                postgres += sum(proc.cpu_times()[:2])
            elif proc.info["name"] == "postgres" and data_dir in (proc.cwd() or ""):
                postgres += sum(proc.cpu_times()[:2])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return csms, postgres


def _lag_samples(api_port: int) -> dict[str, float]:
    """The csms_event_loop_lag_* samples of the CSMS's /metrics (empty on old code)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics", timeout=10).read()
    except OSError:
        return {}
    values = {}
    for line in text.decode().splitlines():
        if line.startswith("csms_event_loop_lag_"):
            name, _, number = line.rpartition(" ")
            values[name] = float(number)
    return values


def _lag_report(before: dict[str, float], after: dict[str, float]) -> str:
    """Lag during the measured window: mean, and how many measurements exceeded 50/100/250 ms."""
    if "csms_event_loop_lag_max_seconds" not in after:
        return "n/a"

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    count = delta("csms_event_loop_lag_seconds_count")
    mean = delta("csms_event_loop_lag_seconds_sum") / max(1.0, count)
    over = [
        count - delta(f'csms_event_loop_lag_seconds_bucket{{le="{le}"}}')
        for le in ("0.05", "0.1", "0.25")
    ]
    return (
        f"mean {mean * 1000:.1f} ms over {count:.0f} measurements; over 50/100/250 ms: "
        f"{over[0]:.0f}/{over[1]:.0f}/{over[2]:.0f}; max of the last 60 s "
        f"{after['csms_event_loop_lag_max_seconds'] * 1000:.0f} ms"
    )


def _print_cprofile(path: str, calls: int) -> None:
    """The cProfile functions with the most own time, and their calls per charger call.

    The counts cover the whole run (start-up and boot included), so per-call
    figures are upper bounds; what matters is which functions run many times a message.
    """
    import pstats

    stats = pstats.Stats(path)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(row[1][2] for row in rows) or 1.0
    print(f"cProfile: own time, calls per charger call ({calls} calls measured):")
    for (file, line, name), (_cc, ncalls, tottime, _ct, _callers) in rows[:25]:
        where = f"{os.path.basename(file)}:{line}({name})"
        print(f"  {100 * tottime / total:5.1f}%  {ncalls / calls:8.1f}/call  {where}")


def top_of_profile(collapsed: str, count: int = 20) -> str:
    """Self and inclusive percentages of the frames in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        n = int(number)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"py-spy: {total} samples; self:"]
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in own.most_common(count)]
    lines.append("inclusive (below the event loop):")
    skip = ("asyncio/", "runpy", "csms/cli.py", "csms/__main__.py", "<module>")
    shown = [(f, n) for f, n in inclusive.most_common() if not any(s in f for s in skip)]
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in shown[:count]]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total calls/s (0: closed loop)")
    parser.add_argument(
        "--py-spy", dest="py_spy", help="record the CSMS with py-spy into this file"
    )
    parser.add_argument(
        "--cprofile", help="run the CSMS under cProfile, written to this file when it stops"
    )
    parser.add_argument("--env", action="append", default=[], help="CSMS_X=value for the CSMS")
    args = parser.parse_args()
    period = args.chargers / args.rate if args.rate > 0 else 0.0
    with tempfile.TemporaryDirectory(prefix="csms-profile-") as tmp:
        api_port = _free_port()
        process, url = _start_csms(tmp, api_port, args.env, args.cprofile)
        spy = None
        try:
            stats, ready = Stats(), asyncio.Barrier(args.chargers + 1)
            tasks = [
                asyncio.create_task(_charger(url, i, stats, ready, period))
                for i in range(args.chargers)
            ]
            await ready.wait()
            await asyncio.sleep(SETTLE_S)
            GO.set()
            if args.py_spy:
                py_spy = shutil.which("py-spy") or os.path.join(
                    os.path.dirname(sys.executable), "py-spy"
                )
                spy = await asyncio.create_subprocess_exec(
                    *(py_spy, "record", "-f", "raw", "-r", "50", "-o", args.py_spy),
                    *("-d", str(int(args.duration)), "--pid", str(process.pid)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu_before = _cpu_seconds(process.pid, tmp)
            lag_before = await asyncio.to_thread(_lag_samples, api_port)
            began = time.perf_counter()
            await asyncio.sleep(args.duration)
            elapsed = time.perf_counter() - began
            calls_in_window = len(stats.latencies)
            cpu_after = _cpu_seconds(process.pid, tmp)
            lag_after = await asyncio.to_thread(_lag_samples, api_port)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            lat = sorted(stats.latencies[:calls_in_window])
            mode = f"open loop at {args.rate:.0f} calls/s" if period else "closed loop"
            print(f"chargers: {args.chargers} (half 1.6J, half 2.0.1), {mode}; env: {args.env}")
            print(
                f"calls: {len(lat)} in {elapsed:.1f}s = {len(lat) / elapsed:.0f} calls/s; "
                f"errors: {stats.errors}; CSMS calls answered: {stats.csms_calls_answered}"
            )
            if len(lat) > 1:
                q = statistics.quantiles(lat, n=1000)
                print(
                    f"latency ms: p50 {q[499] * 1000:.1f}  p95 {q[949] * 1000:.1f}  "
                    f"p99 {q[989] * 1000:.1f}  max {lat[-1] * 1000:.1f}"
                )
            print(f"event-loop lag: {_lag_report(lag_before, lag_after)}")
            calls = max(1, calls_in_window)
            csms_us, pg_us = (
                (a - b) / calls * 1e6 for a, b in zip(cpu_after, cpu_before, strict=True)
            )
            print(f"CPU per call: CSMS {csms_us:.0f} us, Postgres {pg_us:.0f} us")
            conn = await asyncpg.connect(f"postgresql://postgres@/csms?host={tmp}/pgdata")
            stored = await conn.fetchval("SELECT count(*) FROM meter_samples")
            await conn.close()
            print(f"samples answered: {stats.samples_sent}; stored: {stored}")
            if spy is not None:
                await asyncio.wait_for(spy.wait(), 60)
                collapsed = await asyncio.to_thread(Path(args.py_spy).read_text)
                print(top_of_profile(collapsed))
        finally:
            if spy is not None and spy.returncode is None:
                spy.terminate()
            process.terminate()
            process.wait(timeout=60)
        if args.cprofile:
            _print_cprofile(args.cprofile, max(1, calls_in_window))


if __name__ == "__main__":
    asyncio.run(main())
