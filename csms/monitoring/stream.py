"""The real-time notification stream: ``GET /api/v1/stream`` (Server-Sent Events).

What it pushes (the SSE ``event:`` name is the notification type; ``data:`` is
one JSON object with ``type``, ``charge_point_id``, ``occurred_at`` and the
fields of that type):

* ``connector_status_changed``: a connector became Available, Occupied, Faulted...
* ``session_progress``: energy delivered, power, state of charge and, when the
  EV reports SoC, the estimated completion time (``ended`` on the last one);
* ``charger_connected`` / ``charger_disconnected``: connectivity;
* every ``alert_*`` event of fault detection (``alert_opened``, ``alert_resolved``).

Filters (query parameters): ``charger`` and ``type`` (repeatable) and
``site`` (the chargers smart charging placed in that site, looked up in the
cached :class:`~csms.monitoring.sites.SiteMap` as each notification is
published, so a charger that joins the site later is included). Each
subscriber has its own bounded queue fed by one task in bus order, so a
subscriber receives one charger's notifications in the order they were
committed. A subscriber too slow to keep up is disconnected (with a final
``stream_overflow`` event) rather than silently losing notifications.

Resuming: every message's SSE ``id`` is its event id. A client that reconnects
with ``Last-Event-ID`` (browsers' EventSource do so by themselves) first gets
the events it missed, read back from the event log in feed order (up to
``REPLAY_MAX``; session progress, being derived, is not replayed), then the
live ones, without duplicates. If the id is unknown (pruned from the outbox)
or too far back, it gets a ``stream_reset`` event: re-read state from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from csms.api.context import Reader
from csms.cluster import feed
from csms.events import ChargerConnected, ChargerDisconnected, ConnectorStatusChanged, Event
from csms.monitoring import metrics
from csms.monitoring.progress import SessionProgress
from csms.monitoring.sites import SiteMap, SiteOf, site_exists
from csms.storage import Executor

SESSION_PROGRESS = "session_progress"
OVERFLOW = "stream_overflow"
RESET = "stream_reset"
REPLAY_MAX = 10_000  # events a reconnecting client may have missed
_FORWARDED = (ConnectorStatusChanged, ChargerConnected, ChargerDisconnected)
STREAM_TYPES = frozenset(
    {
        SESSION_PROGRESS,
        ConnectorStatusChanged.type,
        ChargerConnected.type,
        ChargerDisconnected.type,
        "alert_opened",
        "alert_resolved",
    }
)
KEEPALIVE_S = 15.0
_POLL_S = 0.5  # how soon a stream notices a shutdown or a gone client


@dataclass(frozen=True, slots=True)
class Notification:
    """One stream message: its type, its charger and its JSON body."""

    type: str
    charge_point_id: str
    id: str
    body: dict[str, Any]

    def sse(self) -> bytes:
        data = json.dumps(self.body, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.type}\ndata: {data}\n\n".encode()


def notification_of(event: Event) -> Notification | None:
    """The stream message for a committed event, or None if the stream does not carry it."""
    if not (isinstance(event, _FORWARDED) or event.type.startswith("alert_")):
        return None
    body = {
        "type": event.type,
        "charge_point_id": event.charge_point_id,
        "occurred_at": event.occurred_at.isoformat(),
        "event_id": str(event.event_id),
        **event.payload(),
    }
    return Notification(event.type, event.charge_point_id, str(event.event_id), body)


def progress_notification(progress: SessionProgress, event: Event) -> Notification:
    eta = progress.estimated_completion_at
    body = {
        "type": SESSION_PROGRESS,
        "charge_point_id": progress.charge_point_id,
        "occurred_at": progress.updated_at.isoformat(),
        "event_id": str(event.event_id),
        "evse_id": progress.evse_id,
        "transaction_id": progress.transaction_id,
        "energy_wh": progress.energy_wh,
        "power_w": progress.power_w,
        "soc_percent": progress.soc_percent,
        "estimated_completion_at": eta.isoformat() if eta else None,
        "ended": progress.ended,
    }
    return Notification(SESSION_PROGRESS, progress.charge_point_id, str(event.event_id), body)


@dataclass(eq=False)
class StreamSubscriber:
    chargers: frozenset[str]  # empty: every charger
    types: frozenset[str]  # empty: every type
    site: str | None = None  # None: every site (and chargers in none)
    queue: asyncio.Queue[Notification | None] = field(default_factory=lambda: asyncio.Queue(1000))

    def wants(self, notification: Notification, site_of: SiteOf) -> bool:
        return (
            (not self.chargers or notification.charge_point_id in self.chargers)
            and (not self.types or notification.type in self.types)
            and (self.site is None or site_of(notification.charge_point_id) == self.site)
        )


def _no_site(_charge_point_id: str) -> str | None:
    return None


class StreamHub:
    """Fans notifications out to the connected stream subscribers."""

    def __init__(self, site_of: SiteOf = _no_site) -> None:
        self._subscribers: list[StreamSubscriber] = []
        self._site_of = site_of  # a dict lookup: called for each notification and subscriber

    def subscribe(
        self, chargers: Iterable[str], types: Iterable[str], site: str | None = None
    ) -> StreamSubscriber:
        subscriber = StreamSubscriber(frozenset(chargers), frozenset(types), site)
        self._subscribers.append(subscriber)
        metrics.STREAM_SUBSCRIBERS.set(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: StreamSubscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
        metrics.STREAM_SUBSCRIBERS.set(len(self._subscribers))

    @property
    def listened_to(self) -> bool:
        """Whether any client is connected: without one, no notification is built."""
        return bool(self._subscribers)

    def publish(self, notification: Notification) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.wants(notification, self._site_of):
                continue
            try:
                subscriber.queue.put_nowait(notification)
            except asyncio.QueueFull:
                self._overflow(subscriber)

    def _overflow(self, subscriber: StreamSubscriber) -> None:
        """Cut a subscriber that fell behind: tell it why, then end its stream."""
        self.unsubscribe(subscriber)
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        overflow = Notification(OVERFLOW, "", "0", {"type": OVERFLOW, "reconnect": True})
        subscriber.queue.put_nowait(overflow)
        subscriber.queue.put_nowait(None)

    def close(self) -> None:
        """End every stream (the CSMS is stopping)."""
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)


def _server_going_away(request: Request) -> bool:
    """True once uvicorn has begun a graceful shutdown (it then waits for open responses).

    uvicorn marks the running response's cycle ``keep_alive = False`` and waits
    for it to finish; an endless stream would hold the CSMS's shutdown forever.
    The ASGI ``receive`` callable is that cycle's bound method. Anything else
    (another server) reads as "not going away".
    """
    cycle = getattr(request.receive, "__self__", None)
    return getattr(cycle, "keep_alive", True) is False


async def missed_since(
    conn: Executor, last_event_id: str, subscriber: StreamSubscriber, site_of: SiteOf
) -> list[Notification]:
    """What a client resuming after ``last_event_id`` missed (filtered), or a reset."""
    reset = [Notification(RESET, "", "0", {"type": RESET, "last_event_id": last_event_id})]
    try:
        event_id = uuid.UUID(last_event_id)
    except ValueError:
        return reset
    row = await conn.fetchrow("SELECT xact_id, id FROM events WHERE event_id = $1", event_id)
    if row is None or row["xact_id"] is None:
        return reset
    rows, _ = await feed.read_after(conn, (int(row["xact_id"]), int(row["id"])), REPLAY_MAX + 1)
    if len(rows) > REPLAY_MAX:
        return reset
    missed = []
    for feed_row in rows:
        note = None if feed_row.event is None else notification_of(feed_row.event)
        if note is not None and subscriber.wants(note, site_of):
            missed.append(note)
    return missed


async def _events(
    hub: StreamHub,
    subscriber: StreamSubscriber,
    request: Request,
    missed: Sequence[Notification] = (),
) -> AsyncIterator[bytes]:
    idle_s = 0.0
    replayed = {note.id for note in missed}
    try:
        yield b": connected\n\n"
        for note in missed:
            yield note.sse()
        while True:
            try:
                item = await asyncio.wait_for(subscriber.queue.get(), _POLL_S)
            except TimeoutError:
                if _server_going_away(request) or await request.is_disconnected():
                    return
                idle_s += _POLL_S
                if idle_s >= KEEPALIVE_S:  # an SSE comment keeps proxies from timing out
                    idle_s = 0.0
                    yield b": keep-alive\n\n"
                continue
            idle_s = 0.0
            if item is None:
                return
            if item.id in replayed:  # read back already, and live since the subscription
                continue
            yield item.sse()
    finally:
        hub.unsubscribe(subscriber)


def stream_router(hub: StreamHub, sites: SiteMap) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["monitoring"])

    @router.get("/stream")
    async def stream(
        request: Request,
        _caller: Reader,
        charger: Annotated[list[str] | None, Query()] = None,
        type: Annotated[list[str] | None, Query()] = None,
        site: Annotated[str | None, Query()] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: connector status, session progress, connectivity and alerts."""
        unknown = {t for t in type or () if t not in STREAM_TYPES and not t.startswith("alert_")}
        if unknown:
            raise HTTPException(
                422,
                f"unknown type {sorted(unknown)}; one of {sorted(STREAM_TYPES)}",
            )
        if site is not None:
            async with sites.pool.acquire() as conn:
                if not await site_exists(conn, site):
                    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site!r}")
            await sites.refresh()  # start from the current membership, not the last reload
        subscriber = hub.subscribe(charger or (), type or (), site)  # before the replay
        missed: list[Notification] = []
        last_event_id = request.headers.get("last-event-id")
        if last_event_id:
            try:
                async with sites.pool.acquire() as conn:
                    missed = await missed_since(conn, last_event_id, subscriber, sites.site_of)
            except BaseException:
                hub.unsubscribe(subscriber)
                raise
        return StreamingResponse(
            _events(hub, subscriber, request, missed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
