"""The central system's decisions and the transactions that record them.

Handlers of both OCPP versions call this with internal events; each call is
one database transaction that updates the projections (chargers, connectors,
sessions, samples) *and* appends the event to the event log, so the answer a
charger gets is only sent once what it reported is stored.
"""

from __future__ import annotations

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
    session_events,
    sessions,
)
from csms.storage.group_commit import BulkWriter, GroupCommitter, Write
from csms.storage.sessions import SessionRef

log = structlog.get_logger(__name__)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SessionCost:
    """What an ended session cost, for the 2.0.1 TransactionEvent(Ended) answer (I02/I03)."""

    total_cost: float
    currency: str


@dataclass(frozen=True, slots=True)
class SessionPriced:
    """A session-end hook priced the session in the end's transaction: its cost for the
    answer (None: no tariff applies), so the answer needs no read after the commit."""

    cost: SessionCost | None


# Called after a SessionEnded committed, before the charger is answered, on a
# connection without a transaction (billing prices the session there: its CDR and
# ``cdr_created`` event are one statement, so the CDR stands before the 2.0.1 answer
# that carries its cost). Also called for a resend of an end (a charger that got no
# answer, e.g. after a crash between the end's commit and the CDR): a hook that finds
# its work done does nothing. It returns what it priced, or None (not priced here: the
# cost is read). A hook that raises is logged; the end stays stored (billing's sweeper
# prices a session whose CDR is missing).
SessionEndHook = Callable[[Executor, int, SessionEnded], Awaitable[SessionPriced | None]]


# Read after a session's end committed: its cost if a tariff applied (billing registers one).
SessionCostReader = Callable[[Executor, str, str], Awaitable[SessionCost | None]]


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    transaction_id: str
    authorization: Authorization | None


@dataclass(frozen=True, slots=True)
class SessionEndOutcome:
    authorization: Authorization | None
    cost: SessionCost | None  # only when asked for (2.0.1); None: no tariff applies


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
        """A start's writes in a transaction, two round trips; (outcome, False) for a resend.

        The first takes the charger's session lock and reads the resend check and the
        token; the second writes the session and the event.
        """
        prepared = await session_events.prepare(
            conn, event.charge_point_id, event.event_id, event.id_token
        )
        authorization = None
        if event.id_token is not None:
            authorization = await self._decide_in(
                conn,
                prepared.token,
                event.id_token,
                event.token_type,
                event.charge_point_id,
                event.transaction_id,
                connector_id=event.connector_id,
            )
        auth_status = authorization.status.value if authorization else None
        if prepared.stored is not None:
            return SessionOutcome(str(prepared.stored["transaction_id"]), authorization), False
        if event.transaction_id is None:
            ref = await session_events.start_v16(conn, event, auth_status or "Invalid")
        else:
            written = await session_events.record(conn, event, protocol, auth_status)
            if written is None:  # a copy committed while this one waited for the lock
                return SessionOutcome(event.transaction_id, authorization), False
            ref = written
        if event.samples:
            metrics.DB_BATCH_SIZE.labels("meter_samples").observe(len(event.samples))
        return SessionOutcome(ref.transaction_id, authorization), True

    async def update_session(
        self, event: SessionUpdated | SessionEnded, protocol: Protocol
    ) -> Authorization | None:
        """Record a transaction update or end (even for a transaction never seen starting).

        Most updates go through group commit's bulk writer, updates with a token through
        group commit one by one; an end is :meth:`end_session`.
        """
        if isinstance(event, SessionEnded):
            return (await self.end_session(event, protocol)).authorization
        return await self._update_session(event, protocol)

    @once
    async def _update_session(
        self, event: SessionUpdated, protocol: Protocol
    ) -> Authorization | None:
        async with metrics.db_write(event.type):
            authorization, ref = await self._write_session_event(event, protocol)
        if ref is None:
            note_duplicate(event)
            return authorization
        # An update's row is built from this event as it is.
        self.bus.publish(event, stored_as_is=True)
        return authorization

    async def _write_session_event(
        self, event: SessionUpdated | SessionEnded, protocol: Protocol
    ) -> tuple[Authorization | None, SessionRef | None]:
        """An update's or end's writes, committed: through group commit's bulk writer
        without an id token (most of them), else one by one (the token's decision is
        Python). No session reference for a resend."""
        apply = functools.partial(self._session_event_in, event=event, protocol=protocol)
        if event.id_token is None:  # written with others in one statement
            bulk = batched_writes.SESSION_EVENTS
            return await self._write(event.charge_point_id, apply, bulk, (event, protocol))
        return await self._write(event.charge_point_id, apply)

    async def _session_event_in(
        self, conn: Executor, event: SessionUpdated | SessionEnded, protocol: Protocol
    ) -> tuple[Authorization | None, SessionRef | None]:
        """An update's or end's own writes: the token's read (if the event has one), then
        one statement for the rest; no session reference for a resend."""
        authorization = await self._authorize_in(
            conn,
            event.id_token,
            event.token_type,
            event.charge_point_id,
            event.transaction_id,
            concurrent_check=False,
        )
        auth_status = authorization.status.value if authorization else None
        ref = await session_events.record(conn, event, protocol, auth_status)
        if ref is not None and event.samples:
            metrics.DB_BATCH_SIZE.labels("meter_samples").observe(len(event.samples))
        return authorization, ref

    @once
    async def end_session(
        self, event: SessionEnded, protocol: Protocol, *, want_cost: bool = False
    ) -> SessionEndOutcome:
        """Record a transaction end, then run its hooks (billing's CDR) before the answer;
        ``want_cost``: the cost for the answer.

        The end is written like an update (group commit, with others in one statement);
        after its commit each hook runs on a connection of its own, without a transaction
        (billing: a read and one statement writing the CDR with its event). A hook that
        fails is logged and the end stays stored (billing's sweeper prices it later). A
        resend of an end runs the hooks too: a crash between the end's commit and its CDR
        leaves the charger unanswered, and its retry gets the CDR made before its answer.
        """
        if event.rejected:
            log.warning("session.end_values_dropped", rejected=list(event.rejected))
            metrics.VALUES_SANITISED.labels("dropped").inc(len(event.rejected))
        async with metrics.db_write(event.type):
            authorization, ref = await self._write_session_event(event, protocol)
        priced = await self._run_end_hooks(event, ref)
        if ref is None:
            note_duplicate(event)
        else:
            # After the hooks: no service reacting to the end (a call to the charger)
            # gets ahead of the answer, as when the hooks ran inside the end's transaction.
            self.bus.publish(event)
        cost = None
        if want_cost:
            if priced is not None:
                cost = priced.cost
            else:  # a resend, or not priced by a hook: the CDR as it stands (if any)
                cost = await self.session_cost(event.charge_point_id, event.transaction_id)
        return SessionEndOutcome(authorization, cost)

    async def _run_end_hooks(
        self, event: SessionEnded, ref: SessionRef | None
    ) -> SessionPriced | None:
        """The session-end hooks of a committed end (``ref`` None: a resend, its session
        looked up); what one of them priced."""
        if not self.session_end_hooks:
            return None
        priced = None
        async with self._acquire() as conn:
            if ref is None:
                ref = await sessions.find(conn, event.charge_point_id, event.transaction_id)
                if ref is None:
                    return None
            for hook in self.session_end_hooks:
                try:
                    priced = await hook(conn, ref.id, event) or priced
                except Exception:
                    log.exception(
                        "session.end_hook_failed",
                        hook=getattr(hook, "__qualname__", repr(hook)),
                        transaction_id=event.transaction_id,
                    )
        return priced

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
