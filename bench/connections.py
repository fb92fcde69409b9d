"""Connections benchmark: memory of idle chargers, and a reconnect storm.

    python -m bench.connections [--chargers 10000] [--workers N] [--generators 4]
        [--heartbeat 30] [--idle-seconds 15] [--connect-rate 1500] [--phase both]
        [--client-compression] [--toy] [--url ws://host:port/ocpp]

Without ``--url`` it starts ``csms`` (``--workers N`` if given) with a fresh
embedded Postgres in a temporary folder, as bench.ingest does. The fleet (half
1.6J, half 2.0.1; bench.connection_fleet) is spread over ``--generators``
processes, so the load generator is not the bottleneck of one interpreter.

1. IDLE: the chargers connect (at most ``--connect-rate`` new sockets a second
   in all), boot and heartbeat every ``--heartbeat`` s; after ``--idle-seconds``
   it prints the RSS of every CSMS process together (supervisor and workers;
   Postgres separately), the memory per connection ((RSS at N - RSS at 0) / N)
   and the event-loop lag metrics (``csms_event_loop_lag_*`` on /metrics, "n/a"
   where the CSMS does not have them).
2. STORM: every charger closes its socket; once the CSMS shows them all
   disconnected, all reconnect and boot at once. It prints the time until all
   are Accepted, connect-to-Accepted and BootNotification latency p50/p99,
   rejected boots and connection errors -- and, meanwhile, the round trip of a
   Heartbeat sent every 100 ms by one charger that stayed connected (max, p99).

With each connect it prints the CPU seconds the CSMS and Postgres used, and per
charger accepted: on a machine shared with other work the wall-clock figures
move with the load, the CPU per charger much less, so that one compares
versions.

``--toy`` runs the same against the in-memory yardstick (``bench.toy_csms``)
instead of the CSMS, for a comparison figure. Loopback only; every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.connection_fleet import generator_main
from bench.heartbeat_probe import HeartbeatProbe, percentile
from csms.storage.embedded import stop_embedded

MiB = 1024 * 1024


class Target:
    """The system under test: its processes, its URL, and where its Postgres is."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.api = ""
        self.dsn: str | None = None
        self.data_dir = ""
        self.log_path = ""

    async def start_csms(self, data_dir: str, workers: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(CSMS_LOG_LEVEL="warning")
        args = ["--host", "127.0.0.1", "--data-dir", data_dir, "--log-level", "warning"]
        if workers > 1:
            port, api_port = _free_port(), _free_port()
            args += ["--workers", str(workers), "--port", str(port), "--api-port", str(api_port)]
        else:
            args += ["--port", "0", "--api-port", "0"]
        self.log_path = os.path.join(data_dir, "csms.log")
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 -- its warnings, not on our console
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "csms", *args, env=env, stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )  # fmt: skip
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 120)).decode()
        if workers > 1:
            match = re.search(r"chargers on port (\d+), operator API on port (\d+)", line)
            if match is None:
                raise RuntimeError(f"csms did not start: {line!r}")
            self.url = f"ws://127.0.0.1:{match[1]}/ocpp"
            self.api = f"http://127.0.0.1:{match[2]}"
            await _until(self._api_answers, 120)
        else:
            if "connect to " not in line:
                raise RuntimeError(f"csms did not start: {line!r}")
            self.url = line.split("connect to ")[1].split("/<charge_point_id>")[0]
            self.api = line.split("operator API: ")[1].strip().removesuffix("/api/v1")
        self.data_dir = data_dir
        print(f"csms pid {self.process.pid}; its log: {self.log_path}", flush=True)
        self.dsn = f"postgresql://postgres@/csms?host={data_dir}/pgdata"

    async def start_toy(self) -> None:
        port = _free_port()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.toy_csms", "--port", str(port),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode()
        if "ready" not in line:
            raise RuntimeError(f"toy did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{port}/ocpp"

    async def _api_answers(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{self.api}/metrics")).status_code == 200
        except httpx.HTTPError:
            return False

    def log_summary(self) -> str:
        """How many error and warning lines the CSMS logged, by event name."""
        if not self.log_path:
            return "n/a"
        counts: dict[str, int] = {}
        with open(self.log_path, errors="replace") as log:
            for line in log:
                match = re.search(r"\[(error|warning) *\] (\S+)", line)
                if match:
                    counts[match[2]] = counts.get(match[2], 0) + 1
        return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"

    def postgres_pids(self) -> set[int]:
        try:
            with open(f"{self.data_dir}/pgdata/postmaster.pid") as pid_file:
                postmaster = psutil.Process(int(pid_file.readline()))
        except (OSError, ValueError, psutil.Error):
            return set()
        return {postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))}

    def rss(self) -> tuple[int, int, int]:
        """(RSS of the CSMS's processes, how many, RSS of Postgres's), in bytes."""
        postgres = self.postgres_pids()
        own = pg = count = 0
        if self.process is not None:
            try:
                root = psutil.Process(self.process.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                tree = []
            for proc in tree:
                try:
                    if proc.pid in postgres or proc.name().startswith("postgres"):
                        continue
                    own += proc.memory_info().rss
                    count += 1
                except psutil.Error:
                    pass
        for pid in postgres:
            try:
                pg += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return own, count, pg

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) used so far by the CSMS's processes and by Postgres's.

        On a shared machine the wall-clock figures depend on what else runs; CPU
        seconds per charger do not (much), so they compare runs and versions.
        """
        postgres = self.postgres_pids()
        own = pg = 0.0
        procs: list[psutil.Process] = []
        if self.process is not None:
            try:
                root = psutil.Process(self.process.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                pass
        for proc in procs:
            try:
                if proc.pid not in postgres and not proc.name().startswith("postgres"):
                    times = proc.cpu_times()
                    own += times.user + times.system
            except psutil.Error:
                pass
        for pid in postgres:
            try:
                times = psutil.Process(pid).cpu_times()
                pg += times.user + times.system
            except psutil.Error:
                pass
        return own, pg

    async def lag_metrics(self) -> str:
        """The event-loop lag figures from /metrics, or "n/a"."""
        if not self.api:
            return "n/a"
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                text = (await http.get(f"{self.api}/metrics")).text
        except httpx.HTTPError:
            return "n/a"
        maximum = re.search(r"^csms_event_loop_lag_max_seconds(?:\{[^}]*\})? (\S+)", text, re.M)
        count = re.search(r"^csms_event_loop_lag_seconds_count(?:\{[^}]*\})? (\S+)", text, re.M)
        total = re.search(r"^csms_event_loop_lag_seconds_sum(?:\{[^}]*\})? (\S+)", text, re.M)
        if maximum is None:
            return "n/a"
        mean = ""
        if count and total and float(count[1]) > 0:
            mean = f", mean {float(total[1]) / float(count[1]) * 1000:.1f} ms"
        return f"max (60 s) {float(maximum[1]) * 1000:.1f} ms{mean}"

    async def connected(self) -> int | None:
        """How many chargers Postgres shows connected (None: not known, e.g. the toy)."""
        if self.dsn is None:
            return None
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM chargers WHERE connected"))
        finally:
            await conn.close()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 60)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                if self.data_dir:  # killed: its embedded Postgres is still running
                    stop_embedded(Path(self.data_dir))


class Generators:
    """The fleet, split over processes; each is driven through a pipe."""

    def __init__(
        self, url: str, chargers: int, processes: int, heartbeat: float, compression: bool
    ) -> None:
        context = multiprocessing.get_context("spawn")
        ids = [f"CONN-{n:05d}" for n in range(chargers)]
        self.pipes = []
        self.processes = []
        for index in range(processes):
            parent, child = context.Pipe()
            process = context.Process(
                target=generator_main,
                args=(child, url, ids[index::processes], heartbeat, compression),
                name=f"bench-generator-{index}",
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    async def ask(self, *command: Any) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return list(await asyncio.gather(*(asyncio.to_thread(p.recv) for p in self.pipes)))

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.ask("stop"), 30)
        except (TimeoutError, EOFError, OSError):
            pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise TimeoutError(f"not settled within {within:g} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def _summarise(results: list[list[dict[str, Any]]], began: float) -> dict[str, Any]:
    outcomes = [o for batch in results for o in batch]
    accepted = [o for o in outcomes if o["accepted_at"] is not None]
    errors: dict[str, int] = {}
    for o in outcomes:
        for name, n in o["errors"].items():
            errors[name] = errors.get(name, 0) + n
    return {
        "accepted": len(accepted),
        "total": len(outcomes),
        "all_accepted_s": max((o["accepted_at"] for o in accepted), default=began) - began,
        "connect": [o["connect_seconds"] for o in accepted],
        "boot": [o["boot_rtt"] for o in accepted],
        "rejected": sum(o["rejected"] for o in outcomes),
        "retries": sum(o["attempts"] - 1 for o in outcomes),
        "errors": errors,
    }


def _cpu_per_charger(target: Target, before: tuple[float, float], chargers: int) -> str:
    own, pg = target.cpu_seconds()
    used, pg_used = own - before[0], pg - before[1]
    per = f"; per charger {used / chargers * 1000:.1f} ms + {pg_used / chargers * 1000:.1f} ms"
    return f"CPU used: CSMS {used:.1f} s, Postgres {pg_used:.1f} s" + (per if chargers else "")


def _latencies(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (
        f"{name}: p50 {percentile(values, 50):.2f} s  p99 {percentile(values, 99):.2f} s  "
        f"max {max(values):.2f} s"
    )


async def _report_rss(target: Target, label: str, baseline: int, chargers: int) -> int:
    own, count, pg = target.rss()
    line = f"{label}: CSMS RSS {own / MiB:.0f} MiB ({count} processes)"
    if chargers:
        line += f", per connection {(own - baseline) / chargers / 1024:.1f} KiB"
    if pg:
        line += f"; Postgres {pg / MiB:.0f} MiB"
    print(line, flush=True)
    return own


async def run(args: argparse.Namespace, target: Target) -> None:
    await asyncio.sleep(2)  # start-up settles (services, first scans)
    baseline = await _report_rss(target, "idle, 0 chargers", 0, 0)
    probe = HeartbeatProbe(target.url, "CONN-PROBE")
    await probe.start()
    fleet = Generators(
        target.url, args.chargers, args.generators, args.heartbeat, args.client_compression
    )
    try:
        print(f"chargers: {args.chargers} (half 1.6J, half 2.0.1) over {args.generators} "
              f"generator processes; heartbeat every {args.heartbeat:g} s", flush=True)  # fmt: skip
        rate = args.connect_rate / args.generators
        began = time.time()
        probe.mark()
        cpu = target.cpu_seconds()
        first = _summarise(await fleet.ask("connect", rate, args.timeout), began)
        print(f"connect at {args.connect_rate:g}/s: {first['accepted']}/{first['total']} "
              f"Accepted in {first['all_accepted_s']:.1f} s; retries {first['retries']}, "
              f"errors {first['errors'] or 0}", flush=True)  # fmt: skip
        print(f"  heartbeat round trip meanwhile: {probe.summary()}", flush=True)
        print(f"  {_cpu_per_charger(target, cpu, first['accepted'])}", flush=True)
        if args.phase in ("idle", "both"):
            probe.mark()
            await asyncio.sleep(args.idle_seconds)
            await _report_rss(target, f"idle, {first['accepted']} chargers", baseline,
                              first["accepted"])  # fmt: skip
            print(f"  event-loop lag: {await target.lag_metrics()}", flush=True)
            print(f"  heartbeat round trip (idle): {probe.summary()}", flush=True)
        if args.phase in ("storm", "both"):
            await fleet.ask("close")
            if target.dsn is not None:
                settled = await _until(lambda: _only_probe(target), args.timeout)
                print(f"storm: all disconnected (recorded) {settled:.1f} s after the close")
            await asyncio.sleep(1)
            probe.mark()
            began = time.time()
            cpu = target.cpu_seconds()
            storm = _summarise(await fleet.ask("connect", 0, args.timeout), began)
            print(f"storm: {storm['accepted']}/{storm['total']} Accepted in "
                  f"{storm['all_accepted_s']:.1f} s; rejected boots {storm['rejected']}, "
                  f"retries {storm['retries']}, errors {storm['errors'] or 0}",
                  flush=True)  # fmt: skip
            print("  " + _latencies("connect to Accepted", storm["connect"]))
            print("  " + _latencies("BootNotification round trip", storm["boot"]))
            print(f"  heartbeat round trip during the storm: {probe.summary()}", flush=True)
            print(f"  {_cpu_per_charger(target, cpu, storm['accepted'])}", flush=True)
            await _report_rss(target, "after the storm", baseline, storm["accepted"])
            print(f"  event-loop lag: {await target.lag_metrics()}", flush=True)
    finally:
        await fleet.stop()
        await probe.stop()
        print(f"CSMS log (errors and warnings): {target.log_summary()}", flush=True)


async def _only_probe(target: Target) -> bool:
    return (await target.connected() or 0) <= 1


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="csms --workers N")
    parser.add_argument("--generators", type=int, default=4, help="fleet processes")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between beats")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--connect-rate", type=float, default=1500.0, help="sockets/s (idle)")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound of every wait, s")
    parser.add_argument("--phase", choices=("idle", "storm", "both"), default="both")
    parser.add_argument(
        "--client-compression",
        action="store_true",
        help="chargers offer permessage-deflate (the CSMS accepts it only with "
        "CSMS_WS_COMPRESSION=true)",
    )
    parser.add_argument("--toy", action="store_true", help="against bench.toy_csms instead")
    parser.add_argument("--url", help="an already running CSMS (RSS is then not measured)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csms-bench-conn-") as tmp:
        target = Target()
        try:
            if args.url:
                target.url = args.url
            elif args.toy:
                await target.start_toy()
            else:
                await target.start_csms(tmp, args.workers)
            await run(args, target)
        finally:
            await target.stop()


if __name__ == "__main__":
    asyncio.run(main())
