"""A charger's connection life cycle: connect, boot, disconnect, last seen.

Part of :class:`csms.central.CentralSystem` (a mixin, for the size of that
module). A known charger's connect, boot and disconnect are each one statement
(:mod:`csms.storage.setup_writes`), written through a group committer of their
own -- the *set-up lanes*:

* a reconnect storm's set-ups are written many chargers to a statement, one
  commit for all of them, each charger answered after its own write committed;
* the set-up lanes hold at most ``setup_db_connections`` pool connections, so
  a storm never takes the connections the messages of chargers already
  connected need (their writes go through the main group committer);
* the fencing generation is taken by the same statement that claims the
  presence, before the charger is answered anything; a connection accepted
  later always wins; a superseded socket is closed by the server.

An unknown charger is registered (policy) in a transaction of its own: rare.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from csms.bus import EventBus
from csms.config import Settings, UnknownChargerPolicy
from csms.events import ChargerBooted, ChargerConnected, ChargerDisconnected, RegistrationStatus
from csms.monitoring import metrics
from csms.security.policy import StoredCredentials
from csms.storage import Executor, chargers, event_log, setup_writes
from csms.storage.group_commit import BulkWriter, GroupCommitter, Write

log = structlog.get_logger(__name__)

T = TypeVar("T")

POLICY_REGISTRATION = {
    UnknownChargerPolicy.ACCEPT: RegistrationStatus.ACCEPTED,
    UnknownChargerPolicy.PENDING: RegistrationStatus.PENDING,
    UnknownChargerPolicy.REJECT: RegistrationStatus.REJECTED,
}


class ConnectionSuperseded(Exception):
    """A connection accepted later (on this node or another) already holds the charger."""

    def __init__(self, charge_point_id: str, generation: int | None = None) -> None:
        super().__init__(charge_point_id)
        self.generation = generation  # the superseded connection's own


def _alone(writer: BulkWriter, item: object) -> Callable[[Any], Awaitable[Any]]:
    """A bulk write of one item: what a failed batch's fallback runs for it."""

    async def apply(conn: Any) -> Any:
        return (await writer(conn, [item]))[0]

    return apply


class PresenceRecorder:
    """The connection life cycle of :class:`csms.central.CentralSystem`."""

    pool: asyncpg.Pool
    settings: Settings
    bus: EventBus
    _last_seen: dict[str, datetime]
    setup_commit: GroupCommitter | None

    def _acquire(self) -> asyncpg.pool.PoolAcquireContext:
        return self.pool.acquire(timeout=self.settings.db_acquire_timeout)

    def _setup_committer(self) -> GroupCommitter | None:
        """The set-up lanes (None when group commit is off: one statement per set-up)."""
        if self.settings.group_commit_window_ms <= 0:
            return None
        return GroupCommitter(
            self.pool,
            window=self.settings.group_commit_window_ms / 1000,
            max_batch=self.settings.group_commit_max_batch,
            lanes=self.settings.setup_db_connections,
            acquire_timeout=self.settings.db_acquire_timeout,
        )

    async def _setup_write(self, charge_point_id: str, writer: BulkWriter, item: object) -> Any:
        """One set-up statement: in a set-up batch, or alone (it commits by itself)."""
        if self.setup_commit is not None:
            return await self.setup_commit.submit(
                Write(charge_point_id, _alone(writer, item), writer, item)
            )
        async with self._acquire() as conn:
            return (await writer(conn, [item]))[0]

    # -- connect ---------------------------------------------------------------------

    async def credentials_of(self, charge_point_id: str) -> StoredCredentials | None:
        """The stored credentials the handshake's authentication checks (set-up lanes)."""
        return await self._setup_write(  # type: ignore[no-any-return]
            charge_point_id, setup_writes.CREDENTIALS, charge_point_id
        )

    async def next_generation(self) -> int:
        """A fencing token for :meth:`connected` (:meth:`connect` takes its own)."""
        return await chargers.next_generation(self.pool)

    async def connect(self, event: ChargerConnected) -> tuple[int, RegistrationStatus | None]:
        """Record a new connection: (its fencing generation, the charger's registration).

        Registration None: an unknown charger that the policy leaves to its boot
        (nothing recorded). Raises :class:`ConnectionSuperseded` (nothing recorded)
        when a connection accepted later already holds the charger.
        """
        item = setup_writes.Connection(event, self.settings.node_id)
        async with metrics.db_write(event.type):  # one connection, one write observed
            outcome: setup_writes.Connected = await self._setup_write(
                event.charge_point_id, setup_writes.CONNECTED, item
            )
            if outcome.registration is None:  # unknown: registered by policy, or by its boot
                registration = await self._connected(event, outcome.generation)
        if outcome.registration is None:
            if registration is not None:
                self.bus.publish(event)
            return outcome.generation, registration
        if not outcome.claimed:
            raise ConnectionSuperseded(event.charge_point_id, outcome.generation)
        self.bus.publish(event)
        return outcome.generation, RegistrationStatus(outcome.registration)

    async def connected(
        self, event: ChargerConnected, generation: int
    ) -> RegistrationStatus | None:
        """Record a new connection holding ``generation`` (registering an unknown charger
        if the policy accepts it); return the registration (None: unknown).

        Raises :class:`ConnectionSuperseded` (nothing recorded) when a connection
        accepted later already holds the charger.
        """
        async with metrics.db_write(event.type):
            registration = await self._connected(event, generation)
        if registration is not None:
            self.bus.publish(event)
        return registration

    async def _connected(
        self, event: ChargerConnected, generation: int
    ) -> RegistrationStatus | None:
        async with self._acquire() as conn, conn.transaction():
            registration = await chargers.registration_of(conn, event.charge_point_id)
            if registration is None:
                if self.settings.unknown_charger_policy is not UnknownChargerPolicy.ACCEPT:
                    # Pending/Rejected chargers are registered by their BootNotification.
                    return None
                registration = await chargers.register(
                    conn, event.charge_point_id, RegistrationStatus.ACCEPTED
                )
                log.info("charger.registered", registration=registration.value)
            if not await self._claim(conn, event, generation):
                raise ConnectionSuperseded(event.charge_point_id, generation)
            await event_log.append(conn, event)
        return registration

    async def _claim(
        self, conn: Executor, event: ChargerConnected | ChargerBooted, generation: int
    ) -> bool:
        """Claim the charger's presence for connection ``generation`` on this node."""
        return await chargers.claim_presence(
            conn,
            event.charge_point_id,
            node_id=self.settings.node_id,
            generation=generation,
            at=event.occurred_at,
            protocol=event.protocol.value,
        )

    async def disconnected(self, event: ChargerDisconnected, generation: int) -> None:
        """Record that connection ``generation`` closed, if it still held the charger."""
        item = setup_writes.Disconnection(event, generation)
        async with metrics.db_write(event.type):
            released = await self._setup_write(
                event.charge_point_id, setup_writes.DISCONNECTED, item
            )
        if released:  # else it moved to a newer connection, or was reaped as offline
            self.bus.publish(event)

    # -- boot ------------------------------------------------------------------------

    async def registration(self, charge_point_id: str) -> RegistrationStatus | None:
        return await chargers.registration_of(self.pool, charge_point_id)

    async def boot(self, event: ChargerBooted, generation: int | None = None) -> RegistrationStatus:
        """Answer a BootNotification from the registry, or by policy for an unknown charger.

        A charger registered by its boot (unknown when it connected) gets its
        presence here, held by connection ``generation``.
        """
        async with metrics.db_write(event.type):
            booted: setup_writes.Booted = await _again_if_raced(
                lambda: self._setup_write(event.charge_point_id, setup_writes.BOOTED, event)
            )
            if booted.registration is None:  # unknown: registered by policy now
                booted = await _again_if_raced(lambda: self._boot_unknown(event, generation))
        assert booted.registration is not None
        if booted.duplicate:
            log.info("message.duplicate_not_stored", event_type=event.type)
            metrics.DUPLICATES.labels(event.type).inc()
        else:
            self.bus.publish(event)
        return RegistrationStatus(booted.registration)

    async def _boot_unknown(
        self, event: ChargerBooted, generation: int | None
    ) -> setup_writes.Booted:
        """Register an unknown charger by policy, with its presence, then record its boot."""
        async with self._acquire() as conn, conn.transaction():
            policy = self.settings.unknown_charger_policy
            registration = await chargers.register(
                conn, event.charge_point_id, POLICY_REGISTRATION[policy]
            )
            log.info("charger.registered", registration=registration.value, policy=policy)
            if generation is not None:
                await self._claim(conn, event, generation)
            booted: Sequence[setup_writes.Booted] = await setup_writes.boot_many(conn, [event])
        return booted[0]

    # -- last seen -------------------------------------------------------------------

    def seen(self, charge_point_id: str) -> None:
        """Note that a charger spoke; written in batches by :meth:`flush_last_seen`."""
        self._last_seen[charge_point_id] = datetime.now(UTC)

    async def flush_last_seen(self) -> None:
        batch, self._last_seen = self._last_seen, {}
        if batch:
            metrics.DB_BATCH_SIZE.labels("last_seen").observe(len(batch))
        try:
            skipped = await chargers.touch_last_seen(self.pool, batch)
        except Exception:
            # Keep what was not written; a newer time for the same charger wins.
            for charge_point_id, at in batch.items():
                self._last_seen.setdefault(charge_point_id, at)
            raise
        for charge_point_id in skipped:  # held by another writer: the next flush
            self._last_seen.setdefault(charge_point_id, batch[charge_point_id])

    async def run_last_seen_flusher(self) -> None:
        while True:
            await asyncio.sleep(self.settings.last_seen_flush_interval)
            try:
                await self.flush_last_seen()
            except Exception:
                log.exception("charger.last_seen_flush_failed")


async def _again_if_raced(write: Callable[[], Awaitable[T]]) -> T:
    """Run a boot's write again if a concurrent copy of the same message won the race.

    Two copies handled at once (the old connection still busy after a reconnect)
    both miss the resend check; the second trips the unique ``event_id``. Run
    again, it sees the first copy and answers as for a resend.
    """
    try:
        return await write()
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != event_log.EVENT_ID_CONSTRAINT:
            raise
        return await write()
