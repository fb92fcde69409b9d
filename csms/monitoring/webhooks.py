"""Outgoing webhooks: alerts POSTed to subscribers, signed, retried, durable.

A subscription names a URL, a secret and optional filters (event types such
as ``alert_opened``, severities, rules). Every ``alert_*`` event on the bus
becomes one pending row in ``webhook_deliveries`` per matching subscription;
from then on it survives a receiver outage and a CSMS restart.

Each attempt POSTs the JSON body with::

    X-CSMS-Event: alert_opened
    X-CSMS-Delivery: <delivery id>            (the same on every retry)
    X-CSMS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body,
compares in constant time and rejects old timestamps (replay protection);
:func:`verify` does exactly that. A 2xx answer is success; anything else
(or no answer) is retried after ``base * 2**(attempt-1)`` seconds, capped at
``monitoring_webhook_retry_max``, until ``monitoring_webhook_max_attempts``.
A subscription receives its events in order: only the oldest pending delivery
of a subscription is attempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import structlog

from csms.config import Settings
from csms.events import Event
from csms.monitoring import metrics
from csms.monitoring import webhook_store as store
from csms.storage import Executor

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-CSMS-Signature"
SIGNATURE_TOLERANCE_S = 300.0
CATCH_UP_AT_START_S = 24 * 3600.0  # after a crash, alerts of the last day are re-checked
CATCH_UP_EVERY_S = 60.0
CATCH_UP_WINDOW_S = 600.0
DELIVERY_RETENTION_S = 7 * 24 * 3600.0  # delivered and given-up rows, for GET .../deliveries
_CLAIM_MARGIN_S = 5.0  # a claimed delivery is due again this long after its timeout
_STOP_GRACE_S = 2.0  # at stop, how long in-flight deliveries may finish


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CSMS-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver does: the signature matches and is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, ...): doubling, capped."""
    return min(max_s, base_s * 2.0 ** max(0, attempts - 1))


def wanted(event: Event) -> bool:
    """Webhooks carry alerts only (the stream carries everything else)."""
    return carried(event.type)


def carried(event_type: str) -> bool:
    """Whether webhooks carry events of this type (alerts only)."""
    return event_type.startswith("alert_")


def webhook_body(
    event_type: str,
    charge_point_id: str,
    occurred_at: datetime,
    event_id: uuid.UUID,
    payload: dict[str, Any],
) -> str:
    """The JSON a receiver gets: the envelope fields, then the event's own fields."""
    body = {
        "type": event_type,
        "charge_point_id": charge_point_id,
        "occurred_at": occurred_at.isoformat(),
        "event_id": str(event_id),
        **payload,
    }
    return json.dumps(body, separators=(",", ":"), default=str)


class WebhookDispatcher:
    """Queues alert events for subscribers and delivers them; :meth:`run` is the worker."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.base_s = settings.monitoring_webhook_retry_base
        self.max_s = settings.monitoring_webhook_retry_max
        self.max_attempts = settings.monitoring_webhook_max_attempts
        self.timeout_s = settings.monitoring_webhook_timeout
        self.poll_s = min(1.0, self.base_s)
        self._wake = asyncio.Event()

    async def enqueue(self, event: Event) -> None:
        """Store one pending delivery per matching subscription (call for committed events)."""
        if not wanted(event):
            return
        payload = event.payload()
        body = webhook_body(
            event.type, event.charge_point_id, event.occurred_at, event.event_id, payload
        )
        await self._enqueue(event.event_id, event.type, payload, body, None)

    async def catch_up(self, window_s: float) -> int:
        """Queue alert events of the last ``window_s`` s that the bus never handed over."""
        queued = 0
        for row in await store.alert_events_not_queued(self.pool, window_s):
            payload = json.loads(row["payload"])
            body = webhook_body(
                row["type"], row["charge_point_id"], row["occurred_at"], row["event_id"], payload
            )
            queued += await self._enqueue(
                row["event_id"], row["type"], payload, body, row["recorded_at"]
            )
        if queued:
            log.info("webhook.caught_up", deliveries=queued)
        return queued

    async def _enqueue(
        self,
        event_id: uuid.UUID,
        event_type: str,
        payload: dict[str, Any],
        body: str,
        recorded_at: datetime | None,
    ) -> int:
        severity, rule = payload.get("severity"), payload.get("rule")
        queued = await store.enqueue(
            self.pool,
            event_id,
            event_type,
            None if severity is None else str(severity),
            None if rule is None else str(rule),
            body,
            recorded_at,
        )
        if queued:
            self._wake.set()
        return queued

    async def run(self) -> None:
        """Deliver until cancelled; catch up from the event log at start and every minute."""
        await self._catch_up_safely(CATCH_UP_AT_START_S)
        last_catch_up = time.monotonic()
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            while True:
                if time.monotonic() - last_catch_up > CATCH_UP_EVERY_S:
                    await self._catch_up_safely(CATCH_UP_WINDOW_S)
                    last_catch_up = time.monotonic()
                self._wake.clear()  # before looking: a delivery queued meanwhile wakes us
                try:
                    sent = await self.deliver_due(client)
                except Exception:
                    log.exception("webhook.dispatch_failed")
                    sent = 0
                if not sent:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_s)
                    except TimeoutError:
                        pass

    async def _catch_up_safely(self, window_s: float) -> None:
        try:
            await self.catch_up(window_s)
            await store.prune(self.pool, DELIVERY_RETENTION_S)
        except Exception:
            log.exception("webhook.catch_up_failed")

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Attempt every due delivery once (concurrently across subscribers); return how many.

        Each is claimed first (for the timeout and a margin) and its outcome
        written after. Stopping lets the attempts in flight finish for a moment;
        a CSMS killed mid-attempt leaves them pending, due again when the claim
        expires (the receiver may then get one twice: ``X-CSMS-Delivery`` tells
        it so).
        """
        work = asyncio.ensure_future(self._deliver_due(client))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(work, _STOP_GRACE_S)
            raise

    async def _deliver_due(self, client: httpx.AsyncClient) -> int:
        deliveries = await store.claim_due(self.pool, self.timeout_s + _CLAIM_MARGIN_S)
        try:
            errors = await asyncio.gather(*(self._post(client, d) for d in deliveries))
        except asyncio.CancelledError:  # not answered in time: due again at once
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.release(self.pool, [d.id for d in deliveries]), 2)
            raise
        await self._record_all(deliveries, errors)
        return len(deliveries)

    async def _record_all(self, deliveries: list[store.Delivery], errors: list[str | None]) -> None:
        async with self.pool.acquire() as conn:
            for delivery, error in zip(deliveries, errors, strict=True):
                await self._record(conn, delivery, error)

    async def _post(self, client: httpx.AsyncClient, delivery: store.Delivery) -> str | None:
        """POST one delivery; None on a 2xx answer, else why it failed."""
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "csms-webhooks",
            "X-CSMS-Event": delivery.event_type,
            "X-CSMS-Delivery": str(delivery.id),
            SIGNATURE_HEADER: sign(delivery.secret, int(time.time()), body),
        }
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if response.is_success else f"HTTP {response.status_code}"

    async def _record(self, conn: Executor, delivery: store.Delivery, error: str | None) -> None:
        if error is None:
            await store.mark_delivered(conn, delivery.id)
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
            return
        attempts = delivery.attempts + 1
        give_up = attempts >= self.max_attempts
        retry_in = None if give_up else retry_delay(attempts, self.base_s, self.max_s)
        await store.mark_failed_attempt(conn, delivery.id, error, retry_in)
        metrics.WEBHOOK_DELIVERIES.labels("gave_up" if give_up else "failed").inc()
        log.warning(
            "webhook.attempt_failed",
            delivery_id=delivery.id,
            url=delivery.url,
            attempts=attempts,
            error=error,
            retry_in_s=retry_in,
        )
