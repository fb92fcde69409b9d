"""This node's membership of the cluster: its lease, and reaping dead nodes.

Every csms on one database is a node. It registers a row in ``nodes`` at
start, renews its lease every third of ``node_lease_seconds`` and deletes the
row when it stops cleanly. At every renewal it also reaps: a node whose lease
has expired (crash, kill -9, network cut) has its chargers marked offline,
each with a ``ChargerDisconnected`` event of reason ``node_lost`` appended in
the same transaction (downtime is opened from it, as for any disconnect), and
its row removed. A charger is therefore shown offline at most
``lease + lease/3`` seconds (20 s by default) after its node died.

At start-up the node also cleans up after its own previous incarnation: the
row of the same ``CSMS_NODE_ID`` (a restart after kill -9), nodes of this host
whose process is gone, and chargers left connected through no live node.

A node that finds its own row gone (it was cut off for longer than its lease
and reaped) or that could not renew for a whole lease has lost its chargers'
presence: it closes their sockets so they reconnect and are recorded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from csms import __version__
from csms.bus import EventBus
from csms.central import utcnow
from csms.cluster.remote_commands import abandon_commands
from csms.config import Settings
from csms.connection import OcppConnection
from csms.events import ChargerDisconnected
from csms.router import ConnectionRegistry
from csms.storage import Executor, chargers, event_log
from csms.storage import nodes as store

log = structlog.get_logger(__name__)

NODE_LOST = "node_lost"  # ChargerDisconnected.reason for chargers of a dead node
UNTRACKED = "untracked"  # for a charger this node holds no socket of (see _reconcile)
_LOST_CLOSE_CODE = 1012  # "service restart": reconnect, to a node that holds a lease


def pid_scope() -> str:
    """This machine's boot and pid namespace: processes of one scope see each other.

    Empty where it cannot be told (no /proc): dead processes are then found by
    their lease only. A hostname alone is not enough: containers may share one.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot_id}/{namespace}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class NodeMembership:
    """Registers, renews and leaves this node's lease; reaps the leases of dead nodes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        registry: ConnectionRegistry,
        bus: EventBus,
        record_disconnect: Callable[[ChargerDisconnected, int], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        dsn: str | None = None,
    ) -> None:
        self.pool = pool
        # Renewals on a connection of their own (when a DSN is given): a pool busy with
        # thousands of charger writes (a reconnect storm, a drain) must not delay the
        # renewal past the lease, or the others would take this live node for dead.
        self.dsn = dsn
        self._lease_conn: asyncpg.Connection[asyncpg.Record] | None = None
        self.record_disconnect = record_disconnect  # CentralSystem.disconnected
        self.settings = settings
        self.registry = registry
        self.bus = bus
        self.clock = clock
        self.identity = store.NodeIdentity(
            settings.node_id, socket.gethostname(), os.getpid(), __version__, pid_scope()
        )
        self.api_url: str | None = None
        self.ocpp_url: str | None = None
        self._renewed = clock()
        self._untracked: set[tuple[str, int]] = set()  # seen at the last reconciliation
        # advertise() renews while run() may be renewing: one lease connection, one
        # operation at a time (asyncpg refuses a second: "another operation is in progress").
        self._renewing = asyncio.Lock()

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def interval(self) -> float:
        return self.settings.node_lease_seconds / 3

    async def join(self) -> None:
        """Register this node, first closing what a previous incarnation left open."""
        scope = self.identity.pid_scope
        pids = await store.pids_in_scope(self.pool, self.node_id, scope) if scope else []
        gone = [p for p in pids if p != self.identity.pid and not _process_exists(p)]
        await self._reap(same_id=True, dead_pids=(scope, gone))
        self._renewed = self.clock()
        log.info(
            "cluster.node_joined", node_id=self.node_id, lease_s=self.settings.node_lease_seconds
        )

    async def _reap(
        self, *, same_id: bool = False, dead_pids: tuple[str, list[int]] | None = None
    ) -> int:
        """One reaping transaction (at join, also registering this node)."""
        events: list[ChargerDisconnected] = []
        async with self.pool.acquire() as conn, conn.transaction():
            dead = await store.lock_dead(conn, self.node_id, same_id, dead_pids)
            for node in dead:
                if node.node_id == self.node_id and node.lease_was_valid:
                    log.warning(
                        "cluster.node_id_still_leased",
                        node_id=self.node_id,
                        hint="a previous incarnation died, or another process uses this "
                        "CSMS_NODE_ID (give every node its own)",
                    )
            reaped = await store.mark_chargers_offline(conn, dead)
            for charger in reaped:
                event = ChargerDisconnected(
                    charge_point_id=charger.charge_point_id,
                    occurred_at=charger.disconnected_at,
                    reason=NODE_LOST,
                )
                await event_log.append(conn, event)
                events.append(event)
            if dead:
                await abandon_commands(conn, [d.node_id for d in dead])
                await store.forget(conn, [d.node_id for d in dead])
            if same_id:
                await store.register(conn, self.identity, self.settings.node_lease_seconds)
        for event in events:
            self.bus.publish(event)
        if dead or reaped:
            log.warning(
                "cluster.nodes_reaped",
                nodes=[d.node_id for d in dead],
                chargers_offline=len(reaped),
            )
        return len(reaped)

    async def renew(self) -> None:
        """Renew the lease; a node that lost it drops its chargers (see the module doc)."""
        async with self._renewing:
            try:
                renewed = await store.renew(
                    await self._renewal_executor(),
                    self.node_id,
                    self.settings.node_lease_seconds,
                    len(self.registry),
                    self.api_url,
                    self.ocpp_url,
                )
            except Exception:
                await self._close_lease_conn()  # the next renewal opens a fresh one
                raise
        if not renewed:
            log.error("cluster.lease_lost", node_id=self.node_id, reason="row reaped")
            await self._drop_all_chargers()
            await self._reap(same_id=True)
        self._renewed = self.clock()

    async def _renewal_executor(self) -> Executor:
        """The renewal's own connection (re-opened after a drop), else the pool."""
        if self.dsn is None:
            return self.pool
        if self._lease_conn is None or self._lease_conn.is_closed():
            self._lease_conn = await asyncpg.connect(self.dsn, timeout=self.interval)
        return self._lease_conn

    async def _close_lease_conn(self) -> None:
        conn, self._lease_conn = self._lease_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def run(self) -> None:
        """Renew and reap every lease/3 seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.renew()
            except Exception:
                log.exception("cluster.lease_renewal_failed", node_id=self.node_id)
                if self.clock() - self._renewed > self.settings.node_lease_seconds:
                    # Others take this node for dead by now; its presence rows are theirs.
                    await self._drop_all_chargers()
                continue
            try:
                await self._reap()
                await self._reconcile()
            except Exception:
                log.exception("cluster.reap_failed")

    async def _reconcile(self) -> None:
        """Mark offline what this node holds in Postgres but has no socket for.

        A disconnect whose recording failed (the database blipped as the socket
        closed) would otherwise leave the charger connected for ever, its node
        alive. Only entries found at two reconciliations in a row are released,
        so a socket being opened or closed right now is left to its handler.
        """
        held = await chargers.held_by(self.pool, self.node_id)
        live = {c.id: c.generation for c in self.registry.all()}
        untracked = {(cp, gen) for cp, gen in held.items() if live.get(cp) != gen}
        confirmed, self._untracked = untracked & self._untracked, untracked
        for cp, generation in sorted(confirmed):
            log.warning("cluster.untracked_charger_released", charge_point_id=cp)
            await self.record_disconnect(
                ChargerDisconnected(charge_point_id=cp, occurred_at=utcnow(), reason=UNTRACKED),
                generation,
            )
            self._untracked.discard((cp, generation))

    async def _drop_all_chargers(self) -> None:
        connections = self.registry.all()
        if connections:
            log.warning("cluster.closing_chargers_after_lease_loss", chargers=len(connections))

        async def close(connection: OcppConnection) -> None:
            try:
                await connection.websocket.close(_LOST_CLOSE_CODE, "node lost its lease")
            except Exception:
                connection.websocket.transport.abort()

        await asyncio.gather(*(close(c) for c in connections))

    async def set_draining(self, draining: bool) -> None:
        """Tell the cluster this node is shutting down (listed as draining)."""
        await store.set_draining(self.pool, self.node_id, draining)

    async def leave(self) -> None:
        """Delete this node's row (clean stop, after its chargers were disconnected)."""
        await self._close_lease_conn()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await abandon_commands(conn, [self.node_id])
                await store.leave(conn, self.node_id)
        except Exception:
            log.exception("cluster.leave_failed", node_id=self.node_id)
        else:
            log.info("cluster.node_left", node_id=self.node_id)
