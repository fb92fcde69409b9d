"""In-process fan-out of committed events to the CSMS's own consumers.

Smart charging, billing and monitoring react to what chargers report; they
subscribe here and receive each event after its transaction has committed
(never an event that was rolled back). Each subscriber gets its own bounded
queue and task, so a slow consumer never delays a charger's answer: when its
queue is full the newest event is dropped for that subscriber, counted and
logged (consumers that must not miss state re-read it from Postgres, which
holds everything, e.g. on a periodic re-plan).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from csms.events import Event

log = structlog.get_logger(__name__)


@dataclass(eq=False)
class Subscription:
    """A subscriber's queue; iterate with ``await subscription.get()``."""

    name: str
    queue: asyncio.Queue[Event]
    dropped: int = field(default=0)

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self, name: str, maxsize: int = 10_000) -> Subscription:
        subscription = Subscription(name, asyncio.Queue(maxsize))
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber without waiting (call after commit)."""
        for subscription in self._subscriptions:
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.dropped += 1
                if subscription.dropped in (1, 10, 100) or subscription.dropped % 1000 == 0:
                    log.warning(
                        "bus.subscriber_behind",
                        subscriber=subscription.name,
                        dropped=subscription.dropped,
                    )
