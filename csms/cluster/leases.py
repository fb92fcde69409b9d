"""Named cluster-wide leases: "exactly one node does X" (one alert engine, one planner per site).

API (small and stable; other services build on it)::

    manager = LeaseManager(dsn, node_id)       # one per CSMS process
    await manager.start()
    lease = await manager.acquire("alerts")    # one try: Lease, or None if another node holds it
    lease = await manager.wait_for("alerts")   # retry every ``retry_interval`` until held
    await lease.lost.wait()                    # set when leadership is lost (or released)
    lease.token                                # fencing token, grows at every change of holder
    await manager.release("alerts")
    await manager.stop()                       # releases everything

    # or, the usual shape of a singleton service:
    await run_while_leader(manager, "alerts", work)  # work(lease) runs while held,
                                                     # is cancelled when the lease is lost

Why session advisory locks on one dedicated connection (rather than a lease
table with expiry times):

* mutual exclusion is Postgres's own: ``pg_try_advisory_lock`` cannot be held by
  two sessions, whatever the clocks of the nodes say (an expiry table needs
  synchronised clocks or a database-clock renewal loop, and a renewal that
  stalls behind a busy event loop loses the lease for nothing);
* a crashed or killed node loses its leases the moment its socket closes (the
  server ends the session), so takeover is immediate for kill -9; after a
  network cut the server notices through TCP keepalives, which this module sets
  short on the lease connection (``tcp_keepalives_*``: about 10 s);
* the holder side detects loss by a ping every ``check_interval`` seconds with a
  timeout shorter than the server's keepalive window, and by asyncpg's
  termination callback, so a holder cut off from the database declares the
  lease lost *before* the server can hand it to another node.

The lock is not a fence on its own: between the server releasing a lock and
the old holder noticing, both could act. So every acquisition also bumps a row
of ``cluster_leases`` (holder, token) in the same session; the token is a
fencing token that writers can check in their own statements
(:func:`lease_is_current`), and the table shows operators who leads what.

Keys: a lease name maps to one 64-bit advisory-lock key by a stable hash
(BLAKE2b of the name with a fixed prefix), the same on every node and release.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from csms.storage import Executor

log = structlog.get_logger(__name__)

T = TypeVar("T")

_KEY_PREFIX = b"csms.lease:"
# The server drops a silent peer after idle + interval * count seconds; the
# holder's own check (interval + timeout) must be faster than that.
_SERVER_KEEPALIVE = {
    "tcp_keepalives_idle": "4",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """``work``, or TimeoutError after ``seconds``.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11 the
    latter can swallow a cancellation that arrives as the work completes, and a
    leadership loop that survives its cancellation runs for ever.
    """
    async with asyncio.timeout(seconds):
        return await work


def lease_key(name: str) -> int:
    """The advisory-lock key of ``name``: a stable signed 64-bit hash."""
    digest = hashlib.blake2b(_KEY_PREFIX + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(eq=False)
class Lease:
    """Leadership of ``name`` by this node; valid until ``lost`` is set."""

    name: str
    token: int  # fencing token: strictly greater than any earlier holder's
    holder: str
    acquired_at: datetime
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def held(self) -> bool:
        return not self.lost.is_set()


async def lease_is_current(conn: Executor, name: str, token: int) -> bool:
    """True if ``token`` is still the newest token of lease ``name`` (a fencing check).

    Run it inside the transaction whose writes must not land under a stale lease;
    ``FOR SHARE`` makes a concurrent takeover wait for that transaction to end.
    """
    current = await conn.fetchval(
        "SELECT token FROM cluster_leases WHERE name = $1 FOR SHARE", name
    )
    return bool(current == token)


class LeaseManager:
    """Holds this node's leases on one dedicated database connection."""

    def __init__(
        self,
        dsn: str,
        node_id: str,
        *,
        retry_interval: float = 2.0,
        check_interval: float = 2.0,
        check_timeout: float = 3.0,
    ) -> None:
        self._dsn = dsn
        self.node_id = node_id
        self.retry_interval = retry_interval
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        self._conn: asyncpg.Connection | None = None
        self._leases: dict[str, Lease] = {}
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._watchdog: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def leases(self) -> dict[str, Lease]:
        """Leases held now, by name (a copy)."""
        return {name: lease for name, lease in self._leases.items() if lease.held}

    def holds(self, name: str) -> bool:
        lease = self._leases.get(name)
        return lease is not None and lease.held

    async def start(self) -> None:
        self._stopped = False
        self._watchdog = asyncio.create_task(self._watch(), name="lease-watchdog")

    async def stop(self) -> None:
        """Release every lease (other nodes take over at once) and close the connection."""
        self._stopped = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        async with self._lock:
            conn, self._conn = self._conn, None
            self._lose_all("stopped")
            if conn is not None and not conn.is_closed():
                try:  # closing the session releases its advisory locks
                    await bounded(conn.close(), self._check_timeout)
                except Exception:
                    conn.terminate()

    async def acquire(self, name: str) -> Lease | None:
        """Try once to become the holder of ``name``; None if another node holds it."""
        if self._stopped:
            return None
        current = self._leases.get(name)
        if current is not None and current.held:
            return current
        async with self._lock:
            try:
                conn = await self._connection()
                got = await bounded(
                    conn.fetchval("SELECT pg_try_advisory_lock($1)", lease_key(name)),
                    self._check_timeout,
                )
                if not got:
                    return None
                row = await bounded(
                    conn.fetchrow(
                        """
                        INSERT INTO cluster_leases (name, holder, token, acquired_at)
                        VALUES ($1, $2, 1, now())
                        ON CONFLICT (name) DO UPDATE
                           SET holder = EXCLUDED.holder,
                               token = cluster_leases.token + 1,
                               acquired_at = now()
                        RETURNING token, acquired_at
                        """,
                        name,
                        self.node_id,
                    ),
                    self._check_timeout,
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("lease.acquire_failed", lease=name, error=repr(exc))
                self._drop_connection("acquire failed")
                return None
            assert row is not None
            lease = Lease(name, row["token"], self.node_id, row["acquired_at"])
            self._leases[name] = lease
            log.info("lease.acquired", lease=name, node=self.node_id, token=lease.token)
            return lease

    async def wait_for(self, name: str) -> Lease:
        """Become the holder of ``name``, trying every ``retry_interval`` seconds."""
        while True:
            lease = await self.acquire(name)
            if lease is not None:
                return lease
            await asyncio.sleep(self.retry_interval)

    async def release(self, name: str) -> None:
        """Give up ``name`` so another node can take it at once."""
        lease = self._leases.pop(name, None)
        if lease is None:
            return
        lease.lost.set()
        async with self._lock:
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await bounded(
                    conn.execute("SELECT pg_advisory_unlock($1)", lease_key(name)),
                    self._check_timeout,
                )
            except Exception as exc:  # a dead connection released it anyway
                log.warning("lease.release_failed", lease=name, error=repr(exc))
                self._drop_connection("release failed")
        log.info("lease.released", lease=name, node=self.node_id)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await bounded(
                asyncpg.connect(
                    self._dsn,
                    server_settings={
                        "application_name": f"csms-lease:{self.node_id}"[:63],
                        **_SERVER_KEEPALIVE,
                    },
                ),
                self._check_timeout * 2,
            )
            self._conn.add_termination_listener(self._on_terminated)
        return self._conn

    def _on_terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._conn = None
            self._lose_all("connection closed")

    def _drop_connection(self, reason: str) -> None:
        """Forget the connection: whatever it held is gone (the server will release it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        self._lose_all(reason)

    def _lose_all(self, reason: str) -> None:
        for name, lease in list(self._leases.items()):
            del self._leases[name]
            if not lease.lost.is_set():
                lease.lost.set()
                if not self._stopped:
                    log.warning("lease.lost", lease=name, node=self.node_id, reason=reason)

    async def _watch(self) -> None:
        """Ping the lease connection; any failure means every lease on it is lost."""
        while True:
            await asyncio.sleep(self._check_interval)
            if not self._leases:
                continue
            async with self._lock:
                conn = self._conn
                if conn is None or conn.is_closed():
                    self._drop_connection("connection closed")
                    continue
                try:
                    await bounded(conn.fetchval("SELECT 1"), self._check_timeout)
                except Exception as exc:
                    log.warning("lease.check_failed", node=self.node_id, error=repr(exc))
                    self._drop_connection("check failed")


async def run_while_leader(
    manager: LeaseManager,
    name: str,
    work: Callable[[Lease], Coroutine[Any, Any, None]],
) -> None:
    """Run ``work(lease)`` whenever this node holds ``name``, for ever (cancel to stop).

    ``work`` is cancelled as soon as the lease is lost, and started again when it
    is re-acquired; if ``work`` returns or fails, the lease is released so another
    node can try. Cancelling this coroutine releases the lease.
    """
    while True:
        lease = await manager.wait_for(name)
        task = asyncio.create_task(work(lease), name=f"leader:{name}")
        lost = asyncio.create_task(lease.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, lost):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("lease.work_failed", lease=name, error=repr(task.exception()))
            await manager.release(name)
        if not lease.lost.is_set():
            lease.lost.set()
        await asyncio.sleep(manager.retry_interval)
