"""The outbox inside a CSMS process: relay (when Kafka is configured), lag, pruning.

With ``KAFKA_BOOTSTRAP_SERVERS`` unset the relay is off; events stay in the
outbox (the ``events`` table) and the CSMS says so at start-up. Either way the
outbox is bounded: rows older than ``CSMS_OUTBOX_RETENTION_HOURS`` are deleted
(published ones only while a relay runs, every one when it is off), and the
lag (unpublished count, age of the oldest) is logged and readable here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from csms.config import Settings
from csms.outbox import store
from csms.outbox.relay import OutboxRelay, RelayStats
from csms.storage import history

log = structlog.get_logger(__name__)


class OutboxService:
    """Owns the outbox's background tasks; :meth:`tasks` hands them to the app."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        lag_log_interval: float = 30.0,
        prune_interval: float = 300.0,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.lag_log_interval = lag_log_interval
        self.prune_interval = prune_interval
        self.relay = OutboxRelay(pool, settings) if settings.kafka_bootstrap_servers else None
        if self.relay is not None:
            # aiokafka logs every failed reconnect (10/s during an outage) at ERROR;
            # the relay reports outages, recovery and lag itself.
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        self.last_lag: store.Lag | None = None

    @property
    def relay_stats(self) -> RelayStats | None:
        return None if self.relay is None else self.relay.stats

    def announce(self) -> None:
        if self.relay is None:
            log.warning(
                "outbox.relay_off",
                reason="KAFKA_BOOTSTRAP_SERVERS is not set",
                retention_hours=self.settings.outbox_retention_hours,
                detail="events stay in the outbox and are deleted after the retention",
            )
        else:
            log.info(
                "outbox.relay_on",
                bootstrap=self.settings.kafka_bootstrap_servers,
                topics=sorted(self.relay.topics.values()),
            )

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        work = [self._log_lag_forever(), self._prune_forever()]
        if self.relay is not None:
            work.append(self.relay.run())
        return work

    async def lag(self) -> store.Lag:
        """Unpublished events and the oldest one's age, now (what metrics export)."""
        self.last_lag = await store.lag(self.pool)
        return self.last_lag

    async def prune(self) -> int:
        cutoff = store.retention_cutoff(datetime.now(UTC), self.settings.outbox_retention_hours)
        deleted = await store.prune(self.pool, cutoff, include_unpublished=self.relay is None)
        if deleted:
            log.info("outbox.pruned", deleted=deleted, older_than=cutoff.isoformat())
        # The durable log keeps its own, longer retention (csms.storage.history).
        dropped = await history.maintain(
            self.pool, datetime.now(UTC), self.settings.history_retention_days
        )
        if dropped:
            log.info("history.partitions_dropped", partitions=dropped)
        return deleted

    async def _log_lag_forever(self) -> None:
        while True:
            try:
                lag = await self.lag()
                stats = self.relay_stats
                log.info(
                    "outbox.lag",
                    unpublished=lag.unpublished,
                    oldest_age_s=None if lag.oldest_age_s is None else round(lag.oldest_age_s, 3),
                    relay="off" if stats is None else ("leader" if stats.leader else "standby"),
                    published_events=None if stats is None else stats.published_events,
                )
            except Exception:
                log.exception("outbox.lag_failed")
            await asyncio.sleep(self.lag_log_interval)

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("outbox.prune_failed")
            await asyncio.sleep(self.prune_interval)
