"""The servers a benchmark loads: the in-memory toy (bench.toy_csms) or ``csms``.

Each is started as its own process (never in the generator's interpreter) on
127.0.0.1 with free ports; ``csms`` gets a fresh embedded PostgreSQL in a
temporary folder and the benchmark's id token (``csms token add BENCH``), as
an operator would set it up. :class:`Target` also reads what the benchmark
reports besides latencies: the CPU each side used (psutil), the CSMS's
event-loop lag (its ``/metrics``, "n/a" when the metric is absent) and the
meter samples stored.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import urllib.request
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.ocpp_load import ID_TOKEN
from csms.storage.embedded import pgdata_of, postmaster_pid

LAG_HISTOGRAM = "csms_event_loop_lag_seconds"
LAG_MAX_GAUGE = "csms_event_loop_lag_max_seconds"


@dataclass
class Target:
    name: str  # "toy" or "csms"
    url: str  # ws://host:port[/ocpp], chargers append /<id>
    process: asyncio.subprocess.Process | None = None
    dsn: str | None = None
    api_url: str | None = None
    workers: int = 1
    data_dir: Path | None = None
    log_path: Path | None = None
    _stdout_drain: asyncio.Task[None] | None = None

    # -- CPU ------------------------------------------------------------------------

    def server_processes(self) -> list[psutil.Process]:
        """The server's processes (a supervisor's workers too) and, for csms, its Postgres."""
        found: list[psutil.Process] = []
        if self.process is not None:
            with suppress(psutil.Error):
                root = psutil.Process(self.process.pid)
                found = [root, *root.children(recursive=True)]
        if self.data_dir is not None:  # the embedded postmaster and its backends
            pid = postmaster_pid(pgdata_of(self.data_dir))
            with suppress(psutil.Error):
                if pid is not None:
                    postmaster = psutil.Process(pid)
                    found += [p for p in (postmaster, *postmaster.children()) if p not in found]
        return found

    def cpu_by_process(self) -> dict[int, tuple[float, bool]]:
        """Per process (pid): CPU seconds so far, and whether it is the server's Postgres."""
        found: dict[int, tuple[float, bool]] = {}
        for process in self.server_processes():
            with suppress(psutil.Error):
                times = process.cpu_times()
                found[process.pid] = (times.user + times.system, "postgres" in process.name())
        return found

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds so far of (the server's own processes, its Postgres)."""
        server = database = 0.0
        for spent, is_postgres in self.cpu_by_process().values():
            if is_postgres:
                database += spent
            else:
                server += spent
        return server, database

    # -- the CSMS's event-loop lag ------------------------------------------------------

    async def loop_lag(self) -> dict[str, dict[str, float]]:
        """The CSMS's lag histogram and max gauge, as ``/metrics`` shows them now.

        ``{node: {"le=0.05": count, ..., "count": n, "max": s}}``; empty when the
        metric is absent (the CSMS before issue 18) or there is no API. One scrape:
        under ``--workers N`` the host's ``/metrics`` already merges every worker's
        histogram (sums) and max gauge (the largest), csms/monitoring/metrics_workers.py.
        """
        if self.api_url is None:
            return {}
        try:
            text = await asyncio.to_thread(_fetch, f"{_root(self.api_url)}/metrics")
        except OSError:
            return {}
        node, values = lag_values(text)
        return {node: values} if values else {}

    async def db_figures(self) -> dict[str, float]:
        """The CSMS's database and GC metrics now (one worker's scrape): batch sizes, write
        transactions, pool connections, collections; empty without an API or the metrics."""
        if self.api_url is None:
            return {}
        try:
            text = await asyncio.to_thread(_fetch, f"{_root(self.api_url)}/metrics")
        except OSError:
            return {}
        wanted = (
            "csms_db_batch_size_",
            "csms_db_write_seconds_",
            "csms_db_pool_connections",
            "csms_gc_",
        )
        figures: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(wanted) and not sample.name.endswith("_bucket"):
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    figures[f"{sample.name}{{{labels}}}"] = sample.value
        return figures

    # -- persistence -----------------------------------------------------------------

    async def stored_samples(self) -> int | None:
        if self.dsn is None:
            return None
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM meter_samples"))
        finally:
            await conn.close()

    async def stop(self) -> None:
        """SIGINT: the CSMS closes its chargers at once (no drain window) and stops."""
        if self.process is None or self.process.returncode is not None:
            return
        with suppress(ProcessLookupError):
            self.process.send_signal(2)
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _root(api_url: str) -> str:
    """The API port's root (``/metrics`` lives there, not under ``/api/v1``)."""
    return api_url.removesuffix("/").removesuffix("/api/v1")


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def lag_values(text: str) -> tuple[str, dict[str, float]]:
    """(the answering worker's node, its lag buckets, count and max) from a scrape."""
    node = "?"
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "csms_chargers_connected" and "node" in sample.labels:
                node = sample.labels["node"]
            elif sample.name == "process_start_time_seconds" and node == "?":
                node = f"started {sample.value}"
            elif sample.name == f"{LAG_HISTOGRAM}_bucket":
                key = f"le={sample.labels['le']}"
                values[key] = values.get(key, 0.0) + sample.value
            elif sample.name == f"{LAG_HISTOGRAM}_count":
                values["count"] = values.get("count", 0.0) + sample.value
            elif sample.name == f"{LAG_HISTOGRAM}_sum":
                values["sum"] = values.get("sum", 0.0) + sample.value
            elif sample.name == LAG_MAX_GAUGE:
                values["max"] = max(values.get("max", 0.0), sample.value)
    return node, values


def lag_between(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> tuple[float, float, float] | None:
    """(p99 upper bound, share of lag samples over 50 ms, max of the last 60 s) in the phase.

    From the histogram's increase between two scrapes of the same workers; None
    when the metric is absent. p99 is the upper edge of its bucket.
    """
    if not after:
        return None
    increase: dict[str, float] = {}
    for node, values in after.items():
        base = before.get(node, {})
        for key, value in values.items():
            if key != "max":
                increase[key] = increase.get(key, 0.0) + value - base.get(key, 0.0)
    gauge = max((v.get("max", math.nan) for v in after.values()), default=math.nan)
    total = increase.get("count", 0.0)
    if total <= 0:
        return math.nan, math.nan, gauge
    buckets = sorted(
        (float(key[3:]), count) for key, count in increase.items() if key.startswith("le=")
    )
    p99 = next((edge for edge, count in buckets if count >= 0.99 * total), math.inf)
    over_50ms = total - next((count for edge, count in buckets if edge >= 0.05), total)
    return p99, over_50ms / total, gauge


# -- starting the servers -----------------------------------------------------------------


async def start_toy() -> Target:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.toy_csms", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    if not line.startswith("ready "):
        raise RuntimeError(f"bench.toy_csms did not start: {line!r}")
    return Target("toy", line.split()[1], process)


async def start_csms(
    data_dir: Path,
    workers: int = 1,
    python: str | None = None,
    *,
    env: dict[str, str] | None = None,
    python_args: tuple[str, ...] = (),
) -> Target:
    """``csms`` on free ports with an embedded Postgres in ``data_dir``; BENCH token added.

    ``python``: the interpreter to run it with (default this one), e.g. another
    checkout's venv, to measure an older CSMS with this benchmark. ``env``: more
    environment (``CSMS_*`` settings); ``python_args``: before ``-m csms`` (a profiler).
    """
    python = python or sys.executable
    settings = env or {}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CSMS_LOG_LEVEL="warning")
    env.update(settings)
    env.update(CSMS_LOG_FORMAT="json", CSMS_API_PORT="0")  # what this module reads
    log_path = data_dir / "csms.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            *(python, *python_args, "-m", "csms", "--host", "127.0.0.1", "--port", "0"),
            *("--data-dir", str(data_dir), "--workers", str(workers)),
            env=env,
            cwd=data_dir,  # not this checkout: `-m csms` must import ``python``'s own csms
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    assert process.stdout is not None
    url = api_url = ""
    ready = 0
    while ready < workers:  # one "CSMS ready" line per worker (and a supervisor line)
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        if not line:
            raise RuntimeError(f"csms exited during start-up; see {log_path}:\n{_tail(log_path)}")
        if line.startswith("CSMS ready: chargers connect to "):
            ready += 1
            url = line.split("connect to ")[1].split("/<charge_point_id>")[0]
            api_url = line.split("operator API: ")[1].strip()
    # Keep reading its stdout, so that a chatty CSMS can never block on a full pipe.
    drain = asyncio.create_task(_discard(process.stdout))
    dsn = f"postgresql://postgres@/csms?host={data_dir}/pgdata"
    token = await asyncio.create_subprocess_exec(
        *(python, "-m", "csms", "token", "add", ID_TOKEN, "--database-url", dsn),
        env=env,
        cwd=data_dir,
        stdout=asyncio.subprocess.DEVNULL,
    )
    if await token.wait() != 0:
        raise RuntimeError("csms token add failed")
    return Target("csms", url, process, dsn, api_url, workers, data_dir, log_path, drain)


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def log_summary(path: Path | None) -> str:
    """``3 warning/error lines: 2 x cluster.lease_renewal_failed, ...`` of a CSMS log."""
    if path is None or not path.exists():
        return "no log"
    events: Counter[str] = Counter()
    lines = path.read_text(errors="replace").splitlines()
    for line in lines:
        try:
            entry = json.loads(line)
            events[f"{entry.get('level', '?')} {entry.get('event', '?')}"] += 1
        except (ValueError, AttributeError):
            events["(not json)"] += 1
    common = ", ".join(f"{n} x {event}" for event, n in events.most_common(5))
    return f"{len(lines)} lines at warning or above" + (f": {common}" if common else "")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
