"""``csms --workers N`` from the command line, and recovery after kill -9.

Real processes: the supervisor, its workers and the embedded Postgres they share.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake

from csms.monitoring import metrics_workers
from csms.storage.embedded import pgdata_of, postmaster_pid
from csms.supervisor import restart_delay, worker_node_id
from tests.conftest import private_tmp_dir
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(240)


@dataclass
class Started:
    process: asyncio.subprocess.Process
    ocpp_port: int
    api_port: int
    log: IO[bytes]


async def _start(data_dir: Path, *extra: str, log_path: Path) -> Started:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CSMS_API_PORT"}}
    log = log_path.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "--host", "127.0.0.1", "--port", "0", "--api-port", "0",
        "--data-dir", str(data_dir), "--drain-seconds", "1", *extra,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert process.stdout is not None
    workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
    ready = 0
    ocpp_port = api_port = 0
    while ready < workers:
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), 90)).decode()
        except TimeoutError:
            raise AssertionError(f"csms not ready within 90 s: {_tail(log_path)}") from None
        assert line, f"csms exited: {_tail(log_path)}"
        if line.startswith("CSMS ready: chargers connect to"):
            ready += 1
            ocpp_port = int(line.split("127.0.0.1:")[1].split("/")[0])
            api_port = int(line.split("operator API: http://127.0.0.1:")[1].split("/")[0])
    return Started(process, ocpp_port, api_port, log)


def _read(log_path: Path) -> str:
    return log_path.read_text()


def _tail(log_path: Path) -> str:
    return _read(log_path)[-3000:]


async def _stop(started: Started, sig: int = signal.SIGTERM) -> int:
    if started.process.returncode is None:
        started.process.send_signal(sig)
        await asyncio.wait_for(started.process.wait(), 90)
    if not started.log.closed:
        started.log.close()
    assert started.process.returncode is not None
    return started.process.returncode


def _workers_listening(supervisor: int, port: int) -> dict[int, psutil.Process]:
    """The supervisor's children that listen on ``port``, by pid."""
    found = {}
    for child in psutil.Process(supervisor).children():
        try:
            listening = [
                c for c in child.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]  # fmt: skip
        except psutil.NoSuchProcess:
            continue
        if listening:
            found[child.pid] = child
    return found


def _holder(workers: dict[int, psutil.Process], port: int, ws: ClientConnection) -> int | None:
    local_port = ws.local_address[1]
    for pid, worker in workers.items():
        for conn in worker.net_connections("tcp"):
            if conn.laddr.port == port and conn.raddr and conn.raddr.port == local_port:
                return pid
    return None


async def _charger(port: int, charge_point_id: str, n: int) -> ClientConnection:
    """Connect and get a heartbeat answered, retrying as a charger does.

    A connection made while a killed worker's listening socket is being torn down
    can land in its queue and be reset: the charger tries again.
    """
    subprotocol = "ocpp1.6" if n % 2 else "ocpp2.0.1"
    for attempt in range(10):
        try:
            ws = await connect(
                f"ws://127.0.0.1:{port}/ocpp/{charge_point_id}",
                subprotocols=[subprotocol],  # type: ignore[list-item]
            )
            break
        except (OSError, InvalidHandshake):
            if attempt == 9:
                raise
            await asyncio.sleep(0.2)
    await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
    answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert answer[0] in (3, 4), answer  # answered (CALLERROR before a boot in 2.0.1 is fine)
    return ws


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # no reaper in containers
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
async def tmp_dir() -> AsyncIterator[Path]:
    path = private_tmp_dir("csms-test-workers-")
    yield path
    stray = postmaster_pid(pgdata_of(path / "data"))
    if stray is not None:  # never leave a server behind, whatever failed
        os.kill(stray, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


async def test_workers_share_the_ports_a_killed_worker_is_restarted_and_its_chargers_reconnect(
    tmp_dir: Path,
) -> None:
    data = tmp_dir / "data"
    csms = await _start(data, "--workers", "2", log_path=tmp_dir / "csms.log")
    supervisor = csms.process.pid
    try:
        workers = _workers_listening(supervisor, csms.ocpp_port)
        assert len(workers) == 2
        assert set(_workers_listening(supervisor, csms.api_port)) == set(workers)
        assert postmaster_pid(pgdata_of(data)) is not None  # one Postgres, started once
        chargers = {f"W-{n}": await _charger(csms.ocpp_port, f"W-{n}", n) for n in range(40)}
        holders = {cp: _holder(workers, csms.ocpp_port, ws) for cp, ws in chargers.items()}
        assert set(holders.values()) == set(workers), holders  # both workers took chargers
        async with httpx.AsyncClient() as http:
            for _ in range(10):
                answer = await http.get(f"http://127.0.0.1:{csms.api_port}/metrics")
                assert answer.status_code == 200

        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        orphaned = [cp for cp, pid in holders.items() if pid == victim]
        for cp in orphaned:
            await chargers[cp].wait_closed()
        for n, cp in enumerate(orphaned):  # they come back, to whichever worker listens
            chargers[cp] = await _charger(csms.ocpp_port, cp, n)

        async def replaced() -> dict[int, psutil.Process] | None:
            now = _workers_listening(supervisor, csms.ocpp_port)
            return now if len(now) == 2 and victim not in now else None

        await eventually(replaced, within=60)
        # SIGTERM to the supervisor: every worker drains (1012), then Postgres stops.
        assert await _stop(csms) == 0
        for ws in chargers.values():
            await asyncio.wait_for(ws.wait_closed(), 30)
        assert {ws.close_code for ws in chargers.values()} == {1012}
    finally:
        await _stop(csms)
    assert postmaster_pid(pgdata_of(data)) is None  # the supervisor stopped Postgres last
    assert not (pgdata_of(data) / "postmaster.pid").exists()
    assert "supervisor.worker_died" in (tmp_dir / "csms.log").read_text()


Scraped = dict[str, list[tuple[dict[str, str], float]]]


async def _scrape(api_port: int) -> Scraped:
    """One scrape on a new connection (the kernel picks the worker per connection)."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{api_port}/metrics")
    assert answer.status_code == 200
    found: Scraped = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _total(scraped: Scraped, name: str, **match: str) -> float:
    return sum(
        value
        for labels, value in scraped.get(name, [])
        if all(labels.get(k) == v for k, v in match.items())
    )


async def _heartbeat(ws: ClientConnection) -> None:
    await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
    assert json.loads(await asyncio.wait_for(ws.recv(), 30))[0] in (3, 4)


async def test_every_scrape_shows_the_whole_host_and_counters_survive_a_worker_restart(
    tmp_dir: Path,
) -> None:
    csms = await _start(tmp_dir / "data", "--workers", "2", log_path=tmp_dir / "csms.log")
    supervisor = csms.process.pid
    heartbeats = 0  # sent and answered, all of them counted as received Heartbeats
    counted: list[float] = []  # what each scrape said, in order

    async def scrape_counted() -> Scraped:
        scraped = await _scrape(csms.api_port)
        counted.append(
            _total(scraped, "csms_ocpp_messages_total", direction="in", action="Heartbeat")
        )
        return scraped

    async def host_figures() -> Scraped | None:
        """A scrape showing the 20 chargers and every Heartbeat (counted after the answer)."""
        scraped = await scrape_counted()
        timed = _total(scraped, "csms_ocpp_handler_seconds_count", action="Heartbeat")
        connected = _total(scraped, "csms_chargers_connected")
        return scraped if (connected, counted[-1], timed) == (20, heartbeats, heartbeats) else None

    try:
        workers = _workers_listening(supervisor, csms.ocpp_port)
        chargers = {f"M-{n}": await _charger(csms.ocpp_port, f"M-{n}", n) for n in range(20)}
        heartbeats += len(chargers)
        holders = {cp: _holder(workers, csms.ocpp_port, ws) for cp, ws in chargers.items()}
        assert set(holders.values()) == set(workers), holders  # both workers hold chargers
        # The worker not scraped refreshes its connection gauge within a few seconds.
        scraped = await eventually(host_figures, within=30)
        nodes = {labels["node"] for labels, _ in scraped["csms_chargers_connected"]}
        assert len(nodes) == 2  # one series per worker, summed by a query over nodes
        cpu = {int(labels["pid"]) for labels, _ in scraped["process_cpu_seconds_total"]}
        assert cpu == set(workers)  # each worker's own CPU, whichever answered
        for n in range(12):  # whichever worker answers: the host's figures
            await _heartbeat(chargers[f"M-{n}"])
            heartbeats += 1
            await eventually(host_figures, within=30)
            assert _total(await scrape_counted(), "csms_chargers_connected") == 20

        # A worker killed: its counts stay in the host's counters (no step back), its
        # chargers leave the connected gauge and come back through the other worker.
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        orphaned = [cp for cp, pid in holders.items() if pid == victim]
        for cp in orphaned:
            await chargers[cp].wait_closed()
        for n, cp in enumerate(orphaned):
            chargers[cp] = await _charger(csms.ocpp_port, cp, n)
            heartbeats += 1
            await scrape_counted()
        scraped = await eventually(host_figures, within=30)
        assert counted == sorted(counted), counted  # never decreasing, the restart included
        nodes = {labels["node"] for labels, _ in scraped["csms_chargers_connected"]}
        assert not any(node.endswith(f"-{victim}") for node in nodes), nodes

        # The restarted worker joins after its back-off and start-up (the chargers may all
        # have reconnected through the survivor before): wait for its own CPU series.
        async def both_workers_cpu() -> set[int] | None:
            scraped = await scrape_counted()
            cpu = {int(labels["pid"]) for labels, _ in scraped["process_cpu_seconds_total"]}
            return cpu if len(cpu) == 2 and victim not in cpu else None

        await eventually(both_workers_cpu, within=60)
        assert counted == sorted(counted), counted
    finally:
        assert await _stop(csms) == 0


async def test_sighup_replaces_the_workers_one_at_a_time(tmp_dir: Path) -> None:
    csms = await _start(tmp_dir / "data", "--workers", "2", log_path=tmp_dir / "csms.log")
    supervisor = csms.process.pid
    try:
        before = set(_workers_listening(supervisor, csms.ocpp_port))
        chargers = [await _charger(csms.ocpp_port, f"HUP-{n}", n) for n in range(10)]
        csms.process.send_signal(signal.SIGHUP)

        async def replaced() -> bool:
            now = set(_workers_listening(supervisor, csms.ocpp_port))
            return len(now) == 2 and not now & before

        await eventually(replaced, within=90)
        for ws in chargers:  # each drained by its worker, to reconnect elsewhere
            await asyncio.wait_for(ws.wait_closed(), 30)
            assert ws.close_code == 1012
        again = await _charger(csms.ocpp_port, "HUP-after", 0)
        await again.close()

        async def logged_done() -> bool:  # logged once the last new worker is ready
            return "supervisor.rolling_restart_done" in _read(tmp_dir / "csms.log")

        await eventually(logged_done, within=30)
    finally:
        assert await _stop(csms) == 0


async def test_after_kill_9_the_next_csms_adopts_the_orphaned_postgres_and_stops_it(
    tmp_dir: Path,
) -> None:
    data = tmp_dir / "data"
    pgdata = pgdata_of(data)
    # A single csms killed with SIGKILL leaves its Postgres running.
    first = await _start(data, log_path=tmp_dir / "first.log")
    await _stop(first, signal.SIGKILL)
    orphan = postmaster_pid(pgdata)
    assert orphan is not None
    pid_file = (pgdata / "postmaster.pid").read_text()

    # So does a supervisor killed with SIGKILL; its workers follow it out.
    second = await _start(data, "--workers", "2", log_path=tmp_dir / "second.log")
    assert postmaster_pid(pgdata) == orphan  # adopted, not a second server
    workers = _workers_listening(second.process.pid, second.ocpp_port)
    await _stop(second, signal.SIGKILL)
    for worker in workers.values():
        await asyncio.to_thread(worker.wait, 60)
    assert postmaster_pid(pgdata) == orphan

    # The next csms serves on the orphan and stops it when it exits.
    third = await _start(data, log_path=tmp_dir / "third.log")
    ws = await _charger(third.ocpp_port, "ORPHAN-1", 1)
    await ws.close()
    assert await _stop(third) == 0
    assert postmaster_pid(pgdata) is None
    assert not _running(orphan)

    # A postmaster.pid whose pid now belongs to another process (after a reboot).
    (pgdata / "postmaster.pid").write_text(pid_file.replace(str(orphan), str(os.getpid()), 1))
    fourth = await _start(data, log_path=tmp_dir / "fourth.log")
    ws = await _charger(fourth.ocpp_port, "ORPHAN-2", 2)
    await ws.close()
    assert await _stop(fourth) == 0
    assert postmaster_pid(pgdata) is None


def test_restart_back_off_doubles_to_a_ceiling_and_node_ids_are_per_worker() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 30.0
    assert worker_node_id("edge-a", 0) == "edge-a-1"
    assert worker_node_id(None, 1) == f"{socket.gethostname()}-{os.getpid()}"


def test_the_metrics_directory_is_emptied_at_start_and_an_exited_worker_keeps_its_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    for stale in ("counter_11.db", "histogram_11.db", "gauge_livesum_11.db", "notes.txt"):
        (given / stale).write_bytes(b"x")
    monkeypatch.setenv(metrics_workers.ENV, str(given))
    assert metrics_workers.prepare() == (given, False)  # the operator's: emptied, kept
    assert [p.name for p in given.iterdir()] == ["notes.txt"]

    for name in ("counter_7.db", "histogram_7.db", "gauge_livesum_7.db", "gauge_livemax_7.db"):
        (given / name).write_bytes(b"x")
    (given / "gauge_livesum_8.db").write_bytes(b"x")
    metrics_workers.worker_exited(given, 7)
    left = sorted(p.name for p in given.glob("*.db"))
    assert left == ["counter_7.db", "gauge_livesum_8.db", "histogram_7.db"]

    monkeypatch.delenv(metrics_workers.ENV)
    made, ours = metrics_workers.prepare()  # none given: a fresh one, for the workers
    assert ours and made.is_dir() and os.environ[metrics_workers.ENV] == str(made)
    metrics_workers.remove(made)
    assert not made.exists()
