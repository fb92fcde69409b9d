"""The central system's decisions and the transactions that record them.

Handlers of both OCPP versions call this with internal events; each call is
one database transaction that updates the projections (chargers, connectors,
sessions, samples) *and* appends the event to the event log, so the answer a
charger gets is only sent once what it reported is stored.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg
import structlog

from csms.authorization import NO_AUTHORIZATION as NO_AUTHORIZATION
from csms.authorization import Authorization as Authorization  # where callers look
from csms.authorization import Authorizer
from csms.authorization import decide_authorization as decide_authorization
from csms.authorization import utcnow as utcnow
from csms.bus import EventBus
from csms.config import Settings
from csms.events import (
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
from csms.recording import note_duplicate, once
from csms.storage import (
    Executor,
    batched_writes,
    chargers,
    event_log,
    ocpp_projections,
    sessions,
)
from csms.storage.group_commit import BulkWriter, GroupCommitter, Write

log = structlog.get_logger(__name__)

R = TypeVar("R")


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


class CentralSystem(Authorizer, PresenceRecorder):
    """Records events and makes the decisions chargers wait for.

    The connection life cycle (connect, boot, disconnect, last seen) is
    :class:`csms.presence.PresenceRecorder`'s, the token decisions
    :class:`csms.authorization.Authorizer`'s.
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
                adaptive=settings.group_commit_adaptive,
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

    @once
    async def start_session(self, event: SessionStarted, protocol: Protocol) -> SessionOutcome:
        """Record a transaction start; a 1.6 start gets its transactionId here."""
        async with metrics.db_write(event.type):
            outcome, stored = await self._write(
                event.charge_point_id,
                functools.partial(self._start_session_in, event=event, protocol=protocol),
            )
        if not stored:
            note_duplicate(event)  # the same transactionId again, nothing stored again
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

    @once
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
            note_duplicate(event)
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

    @once
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
                note_duplicate(event)
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
            note_duplicate(event)
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
