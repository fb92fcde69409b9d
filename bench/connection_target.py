"""The system under test of bench.connections: the CSMS (or the toy) as a subprocess.

Starts it, finds its URLs, and reads what the benchmark reports about it: RSS
and CPU seconds of its processes and of its Postgres, the event-loop lag from
its /metrics, and how many chargers Postgres shows connected.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import psutil

from csms.storage.embedded import stop_embedded


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
            port, api_port = free_port(), free_port()
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
            await until(self._api_answers, 120)
        else:
            if "connect to " not in line:
                raise RuntimeError(f"csms did not start: {line!r}")
            self.url = line.split("connect to ")[1].split("/<charge_point_id>")[0]
            self.api = line.split("operator API: ")[1].strip().removesuffix("/api/v1")
        self.data_dir = data_dir
        print(f"csms pid {self.process.pid}; its log: {self.log_path}", flush=True)
        self.dsn = f"postgresql://postgres@/csms?host={data_dir}/pgdata"

    async def start_toy(self) -> None:
        port = free_port()
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], within: float) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise TimeoutError(f"not settled within {within:g} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started
