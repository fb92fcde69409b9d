"""Publish the outbox to Kafka, in order, at least once.

One relay runs per database: it holds a session-level advisory lock on its
own connection, so a second CSMS process stands by instead of interleaving
one charger's events (the lock goes with the connection if the process dies).

Each cycle reads up to ``outbox_batch_size`` unpublished rows in id order,
hands all their messages to the producer (acks=all, small linger, batching,
compression), waits for every acknowledgement, then marks the rows. A row is
marked only if all its messages were acknowledged *and* no earlier row of the
same charger failed, so on a broker error nothing after a gap is marked: the
next cycle re-sends from the first unmarked row (duplicates, never gaps).
aiokafka keeps one request in flight per partition, so per-partition order
holds without the idempotent producer; the relay asks for idempotence and
compression and steps down to none if the broker refuses (Tansu does).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from csms.config import Settings
from csms.monitoring import metrics
from csms.outbox import store
from csms.outbox.envelope import OutboxRow, messages_for
from csms.outbox.topics import topic_names
from csms.storage import Executor

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT_MS = 15_000
"""How long a batch may wait for the broker before the relay calls it failed."""
MAX_BACKOFF_S = 5.0
_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


@dataclass
class RelayStats:
    """What a metrics endpoint reads: updated by the relay as it goes."""

    leader: bool = False
    connected: bool = False
    published_events: int = 0
    published_messages: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    last_published_at: datetime | None = None
    idempotent: bool = True
    compression: str | None = None
    degraded: list[str] = field(default_factory=list)


class OutboxRelay:
    """The task that moves rows from the outbox to Kafka (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        poll_interval: float = 0.1,
        standby_interval: float = 2.0,
    ) -> None:
        assert settings.kafka_bootstrap_servers, "the relay needs KAFKA_BOOTSTRAP_SERVERS"
        self.pool = pool
        self.settings = settings
        self.poll_interval = poll_interval
        self.standby_interval = standby_interval
        self.topics = topic_names(settings)
        compression = settings.kafka_compression.lower()
        self.stats = RelayStats(compression=None if compression in {"", "none"} else compression)
        self._backoff = 0.0

    async def run(self) -> None:
        """Be the relay while holding the lock; stand by otherwise. Runs until cancelled."""
        standby_logged = False
        while True:
            try:
                async with self.pool.acquire() as conn:
                    if not await conn.fetchval(
                        "SELECT pg_try_advisory_lock($1)", store.RELAY_LOCK_KEY
                    ):
                        if not standby_logged:
                            log.info("outbox.relay_standby", reason="another process relays")
                            standby_logged = True
                        await asyncio.sleep(self.standby_interval)
                        continue
                    standby_logged = False
                    self.stats.leader = True
                    log.info("outbox.relay_leader", bootstrap=self.settings.kafka_bootstrap_servers)
                    try:
                        await self._lead(conn)
                    finally:
                        self.stats.leader = False
                        with contextlib.suppress(Exception):
                            try:
                                await conn.execute(
                                    "SELECT pg_advisory_unlock($1)", store.RELAY_LOCK_KEY
                                )
                            except BaseException:
                                # The pool does not reset a released connection
                                # (csms.storage.database): end the session, and its lock.
                                conn.terminate()
                                raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox.relay_failed")
                await asyncio.sleep(self._next_backoff())

    async def _lead(self, conn: Executor) -> None:
        producer: AIOKafkaProducer | None = None
        try:
            while True:
                rows = await store.fetch_unpublished(conn, self.settings.outbox_batch_size)
                if not rows:
                    await asyncio.sleep(self.poll_interval)
                    continue
                if producer is None:
                    producer = await self._start_producer()
                    if producer is None:
                        await asyncio.sleep(self._next_backoff())
                        continue
                metrics.DB_BATCH_SIZE.labels("outbox_publish").observe(len(rows))
                ok_ids, messages, error = await self._publish(producer, rows)
                await store.mark_published(conn, ok_ids)
                if ok_ids:
                    self.stats.published_events += len(ok_ids)
                    self.stats.published_messages += messages
                    self.stats.last_published_at = datetime.now(UTC)
                if error is None:
                    self._backoff = 0.0
                    continue
                self.stats.failed_batches += 1
                self.stats.last_error = repr(error)
                self.stats.connected = False
                log.warning(
                    "outbox.publish_failed",
                    error=repr(error),
                    published=len(ok_ids),
                    pending=len(rows) - len(ok_ids),
                )
                await _close(producer)
                producer = None
                if not self._degrade(error):
                    await asyncio.sleep(self._next_backoff())
        finally:
            if producer is not None:
                await _close(producer)

    async def _start_producer(self) -> AIOKafkaProducer | None:
        try:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id="csms-outbox-relay",
                acks="all",
                enable_idempotence=self.stats.idempotent,
                compression_type=self.stats.compression,
                linger_ms=5,
                max_batch_size=256 * 1024,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
        except RuntimeError as error:  # compression library not installed
            self._step_down("compression", error)
            self.stats.compression = None
            return await self._start_producer()
        try:
            await producer.start()
        except Exception as error:
            await _close(producer)
            if self._degrade(error):  # e.g. InitProducerId refused: idempotence unsupported
                return await self._start_producer()
            if self.stats.connected or self._backoff == 0.0:
                log.warning("outbox.kafka_unavailable", error=repr(error))
            self.stats.connected = False
            self.stats.last_error = repr(error)
            return None
        if not self.stats.connected:
            log.info("outbox.kafka_connected", bootstrap=self.settings.kafka_bootstrap_servers)
        self.stats.connected = True
        return producer

    async def _publish(
        self, producer: AIOKafkaProducer, rows: list[OutboxRow]
    ) -> tuple[list[int], int, BaseException | None]:
        """Send every row's messages; return the ids safe to mark, their messages, the error."""
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        error: BaseException | None = None
        enqueued = len(rows)
        try:
            for index, row in enumerate(rows):
                enqueued = index
                for message in messages_for(row):
                    future = await producer.send(
                        self.topics[message.topic], message.value, key=message.key
                    )
                    sent.append((index, future))
            enqueued = len(rows)
        except Exception as exc:  # metadata timeout, buffer full, broker gone
            error = exc
        timeout = 2 * REQUEST_TIMEOUT_MS / 1000 + 5
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(f for _, f in sent), return_exceptions=True), timeout
            )
        except TimeoutError as exc:
            return [], 0, error or exc
        failed = set(range(enqueued, len(rows)))
        for (index, _), result in zip(sent, results, strict=True):
            if isinstance(result, BaseException):
                failed.add(index)
                error = error or result
        blocked: set[str] = set()
        ok_ids: list[int] = []
        ok_rows: set[int] = set()
        for index, row in enumerate(rows):
            if index in failed or row.charge_point_id in blocked:
                blocked.add(row.charge_point_id)
            else:
                ok_ids.append(row.id)
                ok_rows.add(index)
        messages = sum(1 for index, _ in sent if index in ok_rows)
        return ok_ids, messages, error

    def _degrade(self, error: BaseException) -> bool:
        """Step down a producer feature after an error a reachable broker gave before any success.

        Idempotence first (Tansu's memory store rejects InitProducerId), then
        compression. Returns whether something changed (then retry at once).
        """
        if isinstance(error, _UNREACHABLE) or self.stats.published_events:
            return False
        if self.stats.idempotent:
            self.stats.idempotent = False
            self._step_down("idempotence", error)
            return True
        if self.stats.compression is not None:
            self.stats.compression = None
            self._step_down("compression", error)
            return True
        return False

    def _step_down(self, feature: str, error: BaseException) -> None:
        self.stats.degraded.append(feature)
        log.warning("outbox.kafka_feature_unsupported", feature=feature, error=repr(error))

    def _next_backoff(self) -> float:
        self._backoff = min(MAX_BACKOFF_S, max(0.2, self._backoff * 2))
        return self._backoff


async def _close(producer: AIOKafkaProducer) -> None:
    """Stop a producer without letting a dead broker hold up the relay or shutdown."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 5)
