"""A once-per-cluster consumer of the event feed: runs on the node holding its lease.

:class:`LeaderFeed` is how the alert engine and the history writers run once
in a cluster: while this node holds the lease ``name`` it reads the feed from
the cursor stored under the same name in ``feed_cursors`` (so a node that
takes over resumes where the previous holder stopped: nothing skipped, at
most the last second of events handled twice), calls ``handle`` for each
event and stores its cursor every ``checkpoint_interval`` seconds — only while
the lease's fencing token is still the newest, so a node that lost the lease
without noticing cannot move the cursor. Optional ``warm_up`` sees the events
of the last ``warm_up_s`` seconds before the stored cursor on takeover (rule
windows are rebuilt from them; nothing is acted on twice). Side tasks
(``also_run``, e.g. a periodic tick) run beside the consumer, only while
leading. ``wants`` names the rows ``handle`` acts on (asked of a row's head);
the others only move the cursor, and are neither fetched nor decoded for it.
``flush`` lets ``handle`` defer its writes: it is awaited whenever the events
already delivered are all handled, and before every checkpoint, so the cursor
never passes an event whose writes are still pending (a burst of events becomes
one transaction, not one per event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from csms.bus import EventBus, Subscription
from csms.cluster import feed
from csms.cluster.feed import Interest
from csms.cluster.leases import (
    Lease,
    LeaseManager,
    lease_is_current,
    run_while_leader,
)
from csms.events import Event
from csms.monitoring import metrics

log = structlog.get_logger(__name__)

Handler = Callable[[Event], Awaitable[None]]
WarmUp = Callable[[Event, datetime], Awaitable[None]]


class LeaderFeed:
    def __init__(
        self,
        name: str,
        *,
        bus: EventBus,
        leases: LeaseManager,
        pool: asyncpg.Pool,
        handle: Handler,
        on_lead: Callable[[Lease], Awaitable[None]] | None = None,
        on_lose: Callable[[], None] | None = None,
        warm_up: WarmUp | None = None,
        warm_up_s: float = 0.0,
        also_run: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
        checkpoint_interval: float = 1.0,
        wants: Interest | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.bus = bus
        self.leases = leases
        self.pool = pool
        self.handle = handle
        self.on_lead = on_lead
        self.on_lose = on_lose
        self.warm_up = warm_up
        self.warm_up_s = warm_up_s
        self.also_run = also_run
        self.checkpoint_interval = checkpoint_interval
        # The rows ``handle`` (and ``warm_up``) act on (None: all): the others only move
        # the cursor, and the lease holder need not fetch nor decode them for this feed.
        self.wants = wants
        self.flush = flush
        self.subscription: Subscription | None = None
        self.busy = False  # handling an event now
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # leading and subscribed
        self._handled = 0

    @property
    def leading(self) -> bool:
        return self.leases.holds(self.name)

    async def start(self) -> None:
        """Start following the lease; if this node gets it at once, return once it leads.

        So a single node (or the first of a cluster) has its once-per-cluster jobs
        running — and their state loaded — before it accepts chargers.
        """
        self._ready = asyncio.Event()
        first = await self.leases.acquire(self.name)
        self._task = asyncio.create_task(run_while_leader(self.leases, self.name, self._lead))
        if first is not None:
            ready = asyncio.create_task(self._ready.wait())
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stop (after handling what is already committed, for up to ``drain_s`` seconds)."""
        if drain_s > 0 and self.subscription is not None and self.leading:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_s
            await self.bus.caught_up(drain_s)
            while self.busy or (self.subscription is not None and not self.subscription.empty()):
                if loop.time() > deadline:
                    log.warning("leader_feed.stop_undrained", feed=self.name)
                    break
                await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _lead(self, lease: Lease) -> None:
        metrics.CLUSTER_LEADER.labels(self.name).set(1)
        side: list[asyncio.Task[None]] = []
        subscription: Subscription | None = None
        try:
            if self.on_lead is not None:
                await self.on_lead(lease)
            subscription, resume_at = await self._subscribe()
            self.subscription = subscription
            log.info("leader_feed.leading", feed=self.name, token=lease.token)
            self._ready.set()
            side = [asyncio.create_task(work()) for work in self.also_run]
            await self._consume(lease, subscription, resume_at)
        finally:
            metrics.CLUSTER_LEADER.labels(self.name).set(0)
            if self.on_lose is not None:
                self.on_lose()
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if subscription is not None:
                with contextlib.suppress(Exception):
                    if self.flush is not None:  # failed: the cursor stays behind its events
                        await self.flush()
                    await self._checkpoint(lease, subscription.position)
                self.bus.unsubscribe(subscription)
            self.subscription = None

    async def _subscribe(self) -> tuple[Subscription, feed.Position | None]:
        async with self.pool.acquire() as conn:
            stored = await feed.load_cursor(conn, self.name)
            if stored is None:  # the first holder ever: from when this node started
                first = await self.bus.subscribe_at(
                    self.name, self.bus.started_at, wants=self.wants
                )
                return first, None
            start = stored
            saved_at = await feed.load_cursor_saved_at(conn, self.name)
            if self.warm_up is not None and self.warm_up_s > 0:
                since = datetime.now(UTC) - timedelta(seconds=self.warm_up_s)
                start = min(stored, await feed.position_before(conn, since))
        resumed = await self.bus.subscribe_at(self.name, start, saved_at=saved_at, wants=self.wants)
        return resumed, stored

    async def _consume(
        self, lease: Lease, subscription: Subscription, resume_at: feed.Position | None
    ) -> None:
        loop = asyncio.get_running_loop()
        saved, saved_when = subscription.position, loop.time()
        while True:
            try:
                event = await subscription.get(within=self.checkpoint_interval)
            except TimeoutError:  # idle: store where we are
                if subscription.position != saved and await self._flushed():
                    saved, saved_when = subscription.position, loop.time()
                    await self._checkpoint(lease, saved)
                continue
            self.busy = True
            try:
                if resume_at is not None and subscription.position <= resume_at:
                    if self.warm_up is not None:
                        await self.warm_up(event, subscription.recorded_at)
                else:
                    await self.handle(event)
            except Exception:
                log.exception("leader_feed.event_failed", feed=self.name, event_type=event.type)
            self._handled += 1
            # Busy: store now and then all the same (a feed that wants few rows may
            # handle one every few hundred milliseconds and never be idle a whole interval).
            checkpoint = (
                self._handled % 500 == 0 or loop.time() - saved_when >= self.checkpoint_interval
            )
            if checkpoint or subscription.empty():
                checkpoint = await self._flushed() and checkpoint
            self.busy = False
            if checkpoint:
                saved, saved_when = subscription.position, loop.time()
                await self._checkpoint(lease, saved)

    async def _flushed(self) -> bool:
        """Run ``flush``; False if it failed (its writes stay pending, the cursor too)."""
        if self.flush is None:
            return True
        try:
            await self.flush()
        except Exception:
            log.exception("leader_feed.flush_failed", feed=self.name)
            return False
        return True

    async def _checkpoint(self, lease: Lease, position: feed.Position) -> None:
        """Store the cursor, unless another node has taken the lease meanwhile."""
        if position == feed.START:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            if await lease_is_current(conn, self.name, lease.token):
                await feed.save_cursor(conn, self.name, position)
