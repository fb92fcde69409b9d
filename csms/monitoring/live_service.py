"""Live monitoring as one service: metrics, connectivity, the event stream, webhooks.

One task reads the bus (committed events, in order per charger) and hands
each event, in turn, to the session tracker (metrics and session progress),
the connectivity recorder (downtime and connector-status history), the
stream hub and the webhook queue. Beside it run the liveness watchdog and the
webhook delivery worker. Fault detection (alerts, health) is another service;
its ``alert_*`` events arrive on the same bus.
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
from csms.events import Event, Protocol
from csms.monitoring import metrics
from csms.monitoring.api_live import availability_router, metrics_router, site_availability_router
from csms.monitoring.connectivity import ConnectivityRecorder, LivenessWatchdog
from csms.monitoring.progress import SessionTracker
from csms.monitoring.sites import SiteMap, power_by_site
from csms.monitoring.stream import StreamHub, notification_of, progress_notification, stream_router
from csms.monitoring.webhooks import WebhookDispatcher
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
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = False  # the consumer is handling an event

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
        self._subscription = self.context.bus.subscribe(self.name)
        await self.recorder.start(self.context.registry)
        await self.sites.refresh()
        self._tasks = [
            asyncio.create_task(self.sites.run()),
            asyncio.create_task(self._consume(self._subscription)),
            asyncio.create_task(self.watchdog.run()),
            asyncio.create_task(self.webhooks.run()),
        ]

    async def stop(self) -> None:
        self.hub.close()
        subscription = self._subscription
        if subscription is not None:
            # What chargers reported while the server closed (their disconnects) still
            # counts: let the consumer finish the queue, in order, for a bounded time.
            deadline = asyncio.get_running_loop().time() + _DRAIN_S
            while self._busy or not subscription.queue.empty():
                if asyncio.get_running_loop().time() > deadline:
                    log.warning("monitoring.stop_undrained", left=subscription.queue.qsize())
                    break
                await asyncio.sleep(0.01)
            self.context.bus.unsubscribe(subscription)
            self._subscription = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.watchdog.stop()

    async def _consume(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            self._busy = True
            try:
                await self._handle(event)
            except Exception:
                log.exception("monitoring.event_failed", event_type=event.type)
            finally:
                self._busy = False

    async def _handle(self, event: Event) -> None:
        progress, delivered_wh = self.tracker.apply(event)
        if delivered_wh > 0:
            metrics.ENERGY_DELIVERED_WH.inc(delivered_wh)
        await self.recorder.apply(event)
        notification = notification_of(event)
        if notification is not None:
            self.hub.publish(notification)
        if progress is not None:
            self.hub.publish(progress_notification(progress, event))
        await self.webhooks.enqueue(event)

    async def refresh_gauges(self) -> None:
        """Scrape-time gauges: live connections, active sessions, power per site, outbox lag.

        The site map is reloaded here (one query per scrape), so power per
        site follows placements made since the last scrape.
        """
        by_protocol = Counter(c.protocol for c in self.context.registry.all())
        for protocol in Protocol:
            metrics.CHARGERS_CONNECTED.labels(protocol.value).set(by_protocol[protocol])
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
