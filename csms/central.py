"""The central system's decisions and the transactions that record them.

Handlers of both OCPP versions call this with internal events; each call is
one database transaction that updates the projections (chargers, connectors,
sessions, samples) *and* appends the event to the event log, so the answer a
charger gets is only sent once what it reported is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
import structlog

from csms.bus import EventBus
from csms.config import Settings
from csms.events import (
    AuthorizationRequested,
    AuthorizationStatus,
    ConnectorStatusChanged,
    Event,
    FirmwareStatusChanged,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.monitoring import metrics
from csms.presence import ConnectionSuperseded as ConnectionSuperseded  # where callers look
from csms.presence import PresenceRecorder
from csms.storage import (
    Executor,
    batched_writes,
    chargers,
    concurrency,
    event_log,
    ocpp_projections,
    sessions,
    tokens,
)
from csms.storage.group_commit import BulkWriter, GroupCommitter, Write

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the CSMS answers about an id token (1.6 idTagInfo, 2.0.1 idTokenInfo)."""

    status: AuthorizationStatus
    expires_at: datetime | None = None
    group_id: str | None = None


# Called inside the transaction that records a SessionEnded, after its event is
# appended (billing prices the session there, so its CDR commits with the end).
SessionEndHook = Callable[[Executor, int, SessionEnded], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionCost:
    """What an ended session cost, for the 2.0.1 TransactionEvent(Ended) answer (I02/I03)."""

    total_cost: float
    currency: str


# Read after a session's end committed: its cost if a tariff applied (billing registers one).
SessionCostReader = Callable[[Executor, str, str], Awaitable[SessionCost | None]]


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    transaction_id: str
    authorization: Authorization | None


NO_AUTHORIZATION = "NoAuthorization"
_AUTHORIZE_CACHE_SIZE = 100_000


def decide_authorization(
    token: tokens.TokenRecord | None, now: datetime, token_type: str | None = None
) -> Authorization:
    """Unknown tokens are Invalid; an Accepted token past its expiry is Expired.

    A 2.0.1 token of type NoAuthorization is what a charger set up for free
    charging sends; it has no identity to look up and is accepted.
    """
    if token_type == NO_AUTHORIZATION:
        return Authorization(AuthorizationStatus.ACCEPTED)
    if token is None:
        return Authorization(AuthorizationStatus.INVALID)
    status = AuthorizationStatus(token.status)
    if status is AuthorizationStatus.ACCEPTED and token.expires_at and token.expires_at <= now:
        status = AuthorizationStatus.EXPIRED
    if status is AuthorizationStatus.ACCEPTED and token.group_status == "Blocked":
        status = AuthorizationStatus.BLOCKED  # a blocked group (parent) blocks its members
    return Authorization(status, token.expires_at, token.group_id)


def utcnow() -> datetime:
    return datetime.now(UTC)


P = ParamSpec("P")
R = TypeVar("R")


def _once(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a recording method again if a concurrent copy of its message won the race.

    Each method checks first whether its event is stored (a resend, csms.dedupe);
    two copies handled at once (the old connection still busy after a reconnect)
    both miss it, and the second trips the unique ``event_id``. Run again, it
    sees the first copy and answers as for a resend.
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != event_log.EVENT_ID_CONSTRAINT:
                raise
            return await method(*args, **kwargs)

    return wrapper


def _duplicate(event: Event) -> None:
    log.info("message.duplicate_not_stored", event_type=event.type, event_id=str(event.event_id))
    metrics.DUPLICATES.labels(event.type).inc()


class CentralSystem(PresenceRecorder):
    """Records events and makes the decisions chargers wait for.

    The connection life cycle (connect, boot, disconnect, last seen) is
    :class:`csms.presence.PresenceRecorder`'s.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, bus: EventBus | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.bus = bus or EventBus()
        self._last_seen: dict[str, datetime] = {}
        self.session_end_hooks: list[SessionEndHook] = []  # (conn, session id, event)
        # Recent Authorize decisions, answered again while the database is down
        # (authorize_cache_seconds; oldest first, at most _AUTHORIZE_CACHE_SIZE).
        self._authorizations: dict[tuple[str, str | None], tuple[float, Authorization]] = {}
        self.session_cost_readers: list[SessionCostReader] = []  # (conn, charger, tx id)
        # Frequent messages' writes share transactions (csms.storage.group_commit);
        # None (window 0): one transaction per message.
        self.group_commit: GroupCommitter | None = None
        if settings.group_commit_window_ms > 0:
            self.group_commit = GroupCommitter(
                pool,
                window=settings.group_commit_window_ms / 1000,
                max_batch=settings.group_commit_max_batch,
                lanes=max(1, settings.db_pool_max // 4),
                acquire_timeout=settings.db_acquire_timeout,
            )
        # Connect, boot and disconnect writes: lanes of their own (csms.presence).
        self.setup_commit = self._setup_committer()

    async def _write(
        self,
        charge_point_id: str,
        apply: Callable[[Executor], Awaitable[R]],
        bulk: BulkWriter | None = None,
        item: object = None,
    ) -> R:
        """Run ``apply`` in a transaction: a group-commit batch's, or one of its own.

        Either way it returns only after the transaction committed.
        """
        if self.group_commit is not None:
            return await self.group_commit.submit(Write(charge_point_id, apply, bulk, item))
        async with self._acquire() as conn, conn.transaction():
            return await apply(conn)

    # -- decisions -------------------------------------------------------------

    async def authorize(self, event: AuthorizationRequested) -> Authorization:
        """Decide on a token; while the database is down, from a recent decision (cache)."""
        key = (event.id_token.lower(), event.token_type)
        try:
            authorization = await self._authorize(event)
        except Exception as error:
            cached = self._authorizations.get(key)
            max_age = self.settings.authorize_cache_seconds
            if not metrics.db_unreachable(error) or cached is None:
                raise
            if asyncio.get_running_loop().time() - cached[0] > max_age:
                raise
            log.warning("authorize.answered_from_cache", status=cached[1].status.value)
            metrics.AUTHORIZE_FROM_CACHE.inc()
            return cached[1]
        if self.settings.authorize_cache_seconds > 0:
            self._authorizations.pop(key, None)
            self._authorizations[key] = (asyncio.get_running_loop().time(), authorization)
            while len(self._authorizations) > _AUTHORIZE_CACHE_SIZE:
                del self._authorizations[next(iter(self._authorizations))]
        return authorization

    @_once
    async def _authorize(self, event: AuthorizationRequested) -> Authorization:
        async with metrics.db_write(event.type), self._acquire() as conn, conn.transaction():
            authorization = await self._authorize_in(
                conn, event.id_token, event.token_type, event.charge_point_id
            )
            assert authorization is not None
            if await event_log.exists(conn, event.event_id):
                _duplicate(event)  # answered again from today's token, not stored again
                return authorization
            await event_log.append(conn, event)
        self.bus.publish(event)
        return authorization

    @_once
    async def start_session(self, event: SessionStarted, protocol: Protocol) -> SessionOutcome:
        """Record a transaction start; a 1.6 start gets its transactionId here."""
        async with metrics.db_write(event.type):
            outcome, stored = await self._write(
                event.charge_point_id,
                functools.partial(self._start_session_in, event=event, protocol=protocol),
            )
        if not stored:
            _duplicate(event)  # the same transactionId again, nothing stored again
            return outcome
        self.bus.publish(event)
        return outcome

    async def _start_session_in(
        self, conn: Executor, event: SessionStarted, protocol: Protocol
    ) -> tuple[SessionOutcome, bool]:
        """A start's writes in a transaction; (outcome, False) for a resend."""
        authorization = await self._authorize_in(
            conn,
            event.id_token,
            event.token_type,
            event.charge_point_id,
            event.transaction_id,
            connector_id=event.connector_id,
        )
        auth_status = authorization.status.value if authorization else None
        stored = await event_log.stored_payload(conn, event.event_id)
        if stored is not None:
            return SessionOutcome(str(stored["transaction_id"]), authorization), False
        await sessions.lock_charger(conn, event.charge_point_id)
        if event.transaction_id is None:
            ref = await sessions.start_v16(conn, event, auth_status or "Invalid")
            event = dataclasses.replace(event, transaction_id=ref.transaction_id)
        else:
            ref = await sessions.upsert(conn, event, protocol, auth_status)
        await self._store_samples(conn, event, ref.id)
        await event_log.append(conn, event, session_id=ref.id)
        return SessionOutcome(ref.transaction_id, authorization), True

    @_once
    async def update_session(
        self, event: SessionUpdated | SessionEnded, protocol: Protocol
    ) -> Authorization | None:
        """Record a transaction update or end (even for a transaction never seen starting).

        Updates go through group commit; an end runs in a transaction of its own,
        since its hooks (billing) are plugins' code, and ends are rare.
        """
        if isinstance(event, SessionEnded) and event.rejected:
            log.warning("session.end_values_dropped", rejected=list(event.rejected))
            metrics.VALUES_SANITISED.labels("dropped").inc(len(event.rejected))
        apply = functools.partial(self._update_session_in, event=event, protocol=protocol)
        async with metrics.db_write(event.type):
            if isinstance(event, SessionEnded):
                async with self._acquire() as conn, conn.transaction():
                    authorization, stored = await apply(conn)
            elif event.id_token is None:  # most updates: written with others in one go
                authorization, stored = await self._write(
                    event.charge_point_id, apply, batched_writes.SESSION_UPDATED, (event, protocol)
                )
            else:
                authorization, stored = await self._write(event.charge_point_id, apply)
        if not stored:
            _duplicate(event)
            return authorization
        # An update's row is built from this event as it is (an end's too, but ends are rare).
        self.bus.publish(event, stored_as_is=isinstance(event, SessionUpdated))
        return authorization

    async def _update_session_in(
        self, conn: Executor, event: SessionUpdated | SessionEnded, protocol: Protocol
    ) -> tuple[Authorization | None, bool]:
        """An update's or end's writes in a transaction; (authorization, False) for a resend."""
        authorization = await self._authorize_in(
            conn,
            event.id_token,
            event.token_type,
            event.charge_point_id,
            event.transaction_id,
            concurrent_check=False,
        )
        auth_status = authorization.status.value if authorization else None
        if await event_log.exists(conn, event.event_id):
            return authorization, False
        await sessions.lock_charger(conn, event.charge_point_id)
        ref = await sessions.upsert(conn, event, protocol, auth_status)
        await self._store_samples(conn, event, ref.id)
        if isinstance(event, SessionEnded):
            await sessions.set_stop_reading(conn, ref.id, event.meter_stop_wh)
        await event_log.append(conn, event, session_id=ref.id)
        if isinstance(event, SessionEnded):
            for hook in self.session_end_hooks:
                await hook(conn, ref.id, event)
        return authorization, True

    async def session_cost(self, charge_point_id: str, transaction_id: str) -> SessionCost | None:
        """The ended session's cost from the first reader that knows it (None: no tariff)."""
        for reader in self.session_cost_readers:
            cost = await reader(self.pool, charge_point_id, transaction_id)
            if cost is not None:
                return cost
        return None

    @_once
    async def record(self, event: Event) -> None:
        """Store an event that needs no decision (status, samples, firmware, reports...)."""
        if isinstance(event, MeterSampled):
            # The most frequent message: one statement, atomic on its own (or one
            # statement for a whole group-commit batch's meter values).
            async with metrics.db_write(event.type):
                if self.group_commit is None:
                    session_id, duplicate = await event_log.record_meter_sampled(self.pool, event)
                else:
                    session_id, duplicate = await self._write(
                        event.charge_point_id,
                        functools.partial(event_log.record_meter_sampled, event=event),
                        batched_writes.METER_SAMPLED,
                        event,
                    )
            if duplicate:
                _duplicate(event)
                return
            metrics.DB_BATCH_SIZE.labels("meter_samples").observe(len(event.samples))
            if session_id is None and event.transaction_id is not None:
                log.warning("meter.unknown_transaction", transaction_id=event.transaction_id)
            self.bus.publish(event, stored_as_is=True)
            return
        bulk = (
            batched_writes.CONNECTOR_STATUS if isinstance(event, ConnectorStatusChanged) else None
        )
        async with metrics.db_write(event.type):
            stored = await self._write(
                event.charge_point_id, functools.partial(self._record_in, event=event), bulk, event
            )
        if not stored:
            _duplicate(event)
            return
        # The frequent kind whose row is built from the event as it is (csms.cluster.feed).
        self.bus.publish(event, stored_as_is=bulk is not None)

    async def _record_in(self, conn: Executor, event: Event) -> bool:
        """A decision-less event's writes in a transaction; False for a resend."""
        if await event_log.exists(conn, event.event_id):
            return False
        if isinstance(event, ConnectorStatusChanged):
            await chargers.set_connector_status(conn, event)
        elif isinstance(event, FirmwareStatusChanged):
            await chargers.set_firmware_status(conn, event.charge_point_id, event.status)
        await ocpp_projections.project(conn, event)
        await event_log.append(conn, event)
        return True

    # -- helpers ---------------------------------------------------------------

    async def _authorize_in(
        self,
        conn: Executor,
        id_token: str | None,
        token_type: str | None,
        charge_point_id: str,
        transaction_id: str | None = None,
        concurrent_check: bool = True,
        connector_id: int | None = None,
    ) -> Authorization | None:
        """The token's authorization; ConcurrentTx (if configured) when it is charging in
        another session. Updates and ends of a session are never refused as concurrent."""
        if id_token is None:
            return None
        token = await tokens.find(conn, id_token)
        authorization = decide_authorization(token, utcnow(), token_type)
        if (
            concurrent_check
            and self.settings.concurrent_tx_window_hours > 0
            and authorization.status is AuthorizationStatus.ACCEPTED
            and token_type != NO_AUTHORIZATION
            and await concurrency.in_another_session(
                conn,
                id_token,
                charge_point_id,
                transaction_id,
                connector_id,
                self.settings.concurrent_tx_window_hours,
            )
        ):
            authorization = dataclasses.replace(
                authorization, status=AuthorizationStatus.CONCURRENT_TX
            )
        return authorization

    async def _store_samples(
        self,
        conn: Executor,
        event: SessionStarted | SessionUpdated | SessionEnded,
        session_id: int,
    ) -> None:
        """Write a session event's samples and move the session's meter readings."""
        if not event.samples:
            return
        metrics.DB_BATCH_SIZE.labels("meter_samples").observe(len(event.samples))
        await event_log.insert_samples(
            conn,
            event.charge_point_id,
            session_id,
            event.evse_id,
            event.connector_id,
            event.samples,
        )
        await sessions.apply_readings(conn, session_id, event.samples)
