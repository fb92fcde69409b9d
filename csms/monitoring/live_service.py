"""Live monitoring as one service: metrics, connectivity, the event stream, webhooks.

The bus carries every node's committed events (in order per charger). What
runs where (docs/cluster-events.md):

* on every node: one task follows the bus from the live tail and hands each
  event to the session tracker (session progress) and the stream hub (the SSE
  stream shows every charger, wherever its socket is) -- but only while some
  one needs them: on the node holding the ``monitoring`` lease (its gauges and
  energy count) and on a node whose stream has a listener. Elsewhere it wants
  no event, so a worker neither fetches nor decodes the other workers' meter
  values for nobody; when it is needed again its tracker starts from the
  active sessions in Postgres (:meth:`SessionTracker.seed`). The liveness
  watchdog looks after this node's sockets; ``csms_chargers_connected`` counts
  them, labelled with the node;
* once per cluster, on the node holding the ``monitoring`` lease
  (:class:`~csms.cluster.singleton.LeaderFeed`, resuming from its stored
  cursor): the connectivity recorder (downtime and connector-status history),
  the webhook queue and its delivery worker, and the cluster-wide metrics
  (energy delivered, active sessions, power per site, outbox lag), which the
  other nodes export as zero so a sum over nodes does not double-count.

Fault detection (alerts, health) is another service; its ``alert_*`` events
arrive on the same bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from fastapi import APIRouter

from csms.bus import Subscription
from csms.cluster.feed import FeedRow
from csms.cluster.leases import Lease
from csms.cluster.singleton import LeaderFeed
from csms.events import Event, Protocol
from csms.monitoring import metrics, metrics_workers
from csms.monitoring.api_live import (
    availability_router,
    metrics_router,
    refresh_periodically,
    site_availability_router,
)
from csms.monitoring.connectivity import ConnectivityRecorder, LivenessWatchdog
from csms.monitoring.progress import SessionTracker
from csms.monitoring.sites import SiteMap, power_by_site
from csms.monitoring.stream import StreamHub, notification_of, progress_notification, stream_router
from csms.monitoring.webhooks import WebhookDispatcher, carried
from csms.monitoring.webhooks_api import webhooks_router
from csms.outbox import store as outbox_store

if TYPE_CHECKING:  # csms.services imports this module to build the service list
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

_DRAIN_S = 5.0  # at stop, how long the last events (disconnects) may take to record


class LiveMonitoringService:
    name = "monitoring-live"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        settings = context.settings
        self.tracker = SessionTracker()
        self.sites = SiteMap(context.pool, settings.monitoring_site_refresh_interval)
        self.hub = StreamHub(self.sites.site_of)
        self.recorder = ConnectivityRecorder(
            context.pool, settings.monitoring_silence_factor * settings.heartbeat_interval
        )
        self.watchdog = LivenessWatchdog(
            context.registry,
            heartbeat_interval=settings.heartbeat_interval,
            silence_factor=settings.monitoring_silence_factor,
            check_interval=settings.monitoring_liveness_check_interval,
        )
        self.webhooks = WebhookDispatcher(context.pool, settings)
        self.leader = LeaderFeed(
            "monitoring",
            bus=context.bus,
            leases=context.leases,
            pool=context.pool,
            handle=self._record,
            on_lead=self._on_lead,
            also_run=[self.webhooks.run],
            wants=self._records,
            flush=self.recorder.flush,
        )
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The tracker has seen every event since it was last seeded: False after a row
        # it did not want (nobody needed it), so it is seeded again before the next.
        self._following = False

    def api_routers(self) -> Sequence[APIRouter]:
        pool = self.context.pool
        return [
            metrics_router(self.refresh_gauges),
            availability_router(pool),
            site_availability_router(pool),
            stream_router(self.hub, self.sites),
            webhooks_router(pool),
        ]

    async def start(self) -> None:
        self._subscription = self.context.bus.subscribe(self.name, self._wants)
        await self.sites.refresh()
        self._tasks = [
            asyncio.create_task(self.sites.run()),
            asyncio.create_task(self._consume(self._subscription)),
            asyncio.create_task(self.watchdog.run()),
        ]
        if metrics_workers.enabled():  # another worker may be the one scraped
            self._tasks.append(asyncio.create_task(refresh_periodically(self.refresh_gauges)))
        await self.leader.start()

    async def stop(self) -> None:
        self.hub.close()
        # What chargers reported while the server closed (their disconnects) still
        # counts: the history writer finishes what is committed, for a bounded time.
        await self.leader.stop(drain_s=_DRAIN_S)
        if self._subscription is not None:
            self.context.bus.unsubscribe(self._subscription)
            self._subscription = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.watchdog.stop()

    def _wants(self, row: FeedRow) -> bool:
        """Every event while the lease's gauges or a stream listener need them; else none."""
        if self.leader.leading or self.hub.listened_to:
            return True
        self._following = False  # the tracker misses this row: seed it again when needed
        return False

    async def _consume(self, subscription: Subscription) -> None:
        """This node's view: session progress and the stream, for every charger."""
        while True:
            event = await subscription.get()
            try:
                if not self._following:
                    await self._seed_tracker()
                self._handle(event)
            except Exception:
                log.exception("monitoring.event_failed", event_type=event.type)

    async def _seed_tracker(self) -> None:
        """Start the tracker from the active sessions (their start and last register)."""
        self._following = True  # from here on: a row not wanted meanwhile resets it
        async with self.context.pool.acquire() as conn:
            active = await conn.fetch(
                """
                SELECT charge_point_id, evse_id, transaction_id, meter_start_wh, meter_last_wh
                FROM sessions WHERE status = 'active'
                """
            )
        self.tracker.seed(
            (
                r["charge_point_id"],
                r["evse_id"],
                r["transaction_id"],
                r["meter_start_wh"],
                r["meter_last_wh"],
            )
            for r in active
        )

    def _handle(self, event: Event) -> None:
        listened = self.hub.listened_to
        progress, delivered_wh = self.tracker.apply(event, with_progress=listened)
        if delivered_wh > 0 and self.leader.leading:  # counted once in the cluster
            metrics.ENERGY_DELIVERED_WH.inc(delivered_wh)
        if not listened:  # the stream's body (every event's payload) costs
            return
        notification = notification_of(event)
        if notification is not None:
            self.hub.publish(notification)
        if progress is not None:
            self.hub.publish(progress_notification(progress, event))

    @staticmethod
    def _records(row: FeedRow) -> bool:
        """The rows the history and the webhooks act on: the rest (meter values) only
        move the ``monitoring`` cursor, without a call of :meth:`_record` each."""
        return row.type in ConnectivityRecorder.RECORDED or carried(row.type)

    async def _on_lead(self, lease: Lease) -> None:
        # Chargers that went away while no node recorded it (a crash) get their downtime.
        await self.recorder.start(self.context.registry)

    async def _record(self, event: Event) -> None:
        """Once per cluster: downtime and status history, webhook deliveries."""
        await self.recorder.apply(event)
        await self.webhooks.enqueue(event)

    async def refresh_gauges(self) -> None:
        """Scrape-time gauges: live connections, active sessions, power per site, outbox lag.

        The site map is reloaded here (one query per scrape), so power per
        site follows placements made since the last scrape.
        """
        by_protocol = Counter(c.protocol for c in self.context.registry.all())
        node = self.context.node_id
        for protocol in Protocol:
            metrics.CHARGERS_CONNECTED.labels(protocol.value, node).set(by_protocol[protocol])
        if not self.leader.leading:  # the cluster-wide figures are the lease holder's
            metrics.set_power_by_site({})
            metrics.OUTBOX_UNPUBLISHED.set(0)
            metrics.OUTBOX_LAG_SECONDS.set(0)
            metrics.SESSIONS_ACTIVE.set(0)
            return
        await self.sites.refresh()
        metrics.set_power_by_site(
            power_by_site(
                self.tracker.power_by_charger(),
                self.sites.site_of,
                self.sites.sites,
                metrics.NO_SITE,
            )
        )
        async with self.context.pool.acquire() as conn:
            active = await conn.fetchval("SELECT count(*) FROM sessions WHERE status = 'active'")
            # Without a relay every event stays unpublished by design: no lag to report.
            if self.context.settings.kafka_bootstrap_servers:
                lag = await outbox_store.lag(conn)
                metrics.OUTBOX_UNPUBLISHED.set(lag.unpublished)
                metrics.OUTBOX_LAG_SECONDS.set(lag.oldest_age_s or 0.0)
        metrics.SESSIONS_ACTIVE.set(active)
