"""What one node needs to hold many idle chargers and survive them all reconnecting.

* :func:`server_options`: the WebSocket server's per-connection settings. OCPP
  frames are small JSON messages, one outstanding call per direction, so
  permessage-deflate (two zlib contexts per socket, about 100 KiB+ of a
  connection's memory, and CPU on every frame) buys almost nothing: off unless
  ``ws_compression``; short receive queues; a listen backlog that holds a
  reconnect storm's SYNs instead of dropping them (which costs the charger a
  1-3-7 s SYN retry); a handshake timeout long enough for a charger waiting its
  turn at :class:`ConnectAdmission`.
* :func:`raise_open_files_limit`: one socket per charger: the soft limit of open
  files is raised to the hard one at start (a default soft limit of 1,024 caps a
  node at about a thousand chargers).
* :func:`widen_listen_backlog`: asyncio accepts as many pending connections in
  one loop turn as the ``backlog`` it was given, and sets each of them up in the
  next turn -- with the kernel's long backlog, up to 4,096 handshakes' set-up in
  one turn, a stall of seconds for every charger already connected (their
  heartbeats wait behind it). The server is created with a small backlog
  (``ACCEPTS_PER_LOOP_TURN``, what asyncio accepts per turn) and its listening
  sockets are then given the long one, which only the kernel uses.
* :class:`FullCollections`: Python's full garbage collections wait while
  chargers are being set up (see the class).
* :class:`ConnectAdmission`: at most ``connect_concurrency`` chargers at a time
  between their handshake and their BootNotification answer. Each of them needs
  several database round trips (authentication, presence, boot); ten thousand
  at once would queue thousands of pool waiters that time out (an InternalError
  to the charger, which then retries: the work done twice), and the chargers
  already connected would wait behind them. Admitted in arrival order instead,
  each setup finishes at the pool's speed and the rest wait in their handshake.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Iterable
from typing import Any

import structlog

from csms.config import Settings

log = structlog.get_logger(__name__)

RECEIVE_QUEUE_FRAMES = 4  # OCPP-J: one call each way, plus its answer, plus a close
WRITE_LIMIT_BYTES = 64 * 1024  # sender waits above this many buffered bytes
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
ACCEPTS_PER_LOOP_TURN = 16  # new sockets asyncio sets up per loop turn (its "backlog")
BOOT_GRACE_SECONDS = 3.0  # a connected charger's set-up slot, waiting for its boot


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``websockets.asyncio.server.serve`` (see the module doc)."""
    return {
        "compression": "deflate" if settings.ws_compression else None,
        "max_queue": RECEIVE_QUEUE_FRAMES,
        "write_limit": WRITE_LIMIT_BYTES,
        "backlog": ACCEPTS_PER_LOOP_TURN,  # the kernel's: widen_listen_backlog
        "open_timeout": settings.ws_handshake_timeout,
    }


def widen_listen_backlog(sockets: Iterable[Any]) -> None:
    """Give listening sockets the kernel backlog ``LISTEN_BACKLOG`` (see the module doc).

    ``listen()`` again on a listening socket only changes its backlog; asyncio
    keeps accepting ``ACCEPTS_PER_LOOP_TURN`` connections per loop turn.
    """
    for sock in sockets:
        with sock.dup() as listening:  # the same socket (one open file), closed after
            listening.listen(LISTEN_BACKLOG)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) as now set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:  # a container may forbid it
            log.warning("capacity.open_files_not_raised", soft=soft, hard=hard, error=str(error))
    log.info("capacity.open_files", limit=soft, hard_limit=hard)
    return soft, hard


class ConnectAdmission:
    """A bounded number of chargers in set-up (handshake to boot answer) at a time.

    :meth:`enter` waits for a slot (in arrival order); the slot is given back by
    :meth:`leave` (boot answered, connection refused or closed), at the latest
    ``hold_limit`` seconds after it was taken (a handshake that fails after the
    check) or ``BOOT_GRACE_SECONDS`` after the connection was recorded (a charger
    that does not boot), so that no charger keeps a slot for long.
    """

    def __init__(self, limit: int, hold_limit: float) -> None:
        self.limit = limit
        self.hold_limit = hold_limit
        self._slots = asyncio.Semaphore(limit)
        self._held: dict[int, asyncio.TimerHandle] = {}  # id(key) -> its release timer

    @property
    def in_setup(self) -> int:
        return len(self._held)

    async def enter(self, key: object) -> None:
        await self._slots.acquire()
        timer = asyncio.get_running_loop().call_later(self.hold_limit, self.leave, key)
        self._held[id(key)] = timer

    def connected(self, key: object) -> None:
        """The charger's connection is recorded: it keeps its slot ``BOOT_GRACE_SECONDS`` more.

        A charger boots right after connecting; one that reconnects without booting
        (after a CSMS restart) must not hold a slot for long.
        """
        timer = self._held.get(id(key))
        if timer is not None:
            timer.cancel()
            loop = asyncio.get_running_loop()
            self._held[id(key)] = loop.call_later(BOOT_GRACE_SECONDS, self.leave, key)

    def leave(self, key: object) -> None:
        """Give the slot of ``key`` back (once; a second call does nothing)."""
        timer = self._held.pop(id(key), None)
        if timer is not None:
            timer.cancel()
            self._slots.release()

    async def leave_when(self, key: object, done: asyncio.Event) -> None:
        """Give the slot back once ``done`` is set (the charger's boot was answered)."""
        try:
            await asyncio.wait_for(done.wait(), self.hold_limit)
        except TimeoutError:
            pass
        finally:
            self.leave(key)


class FullCollections:
    """Python's full (oldest generation) garbage collections, kept out of reconnect storms.

    CPython collects its oldest generation when the objects that survived the
    young collections grew by a quarter since the last full one -- which is what
    a reconnect storm does, again and again -- and a full collection walks every
    container object of the process, every connected charger's included: 1.4 to
    1.9 s with 3,000 chargers on a loaded 2-core machine, during which the event
    loop answers nobody (the heartbeat stalls of the storm benchmark).

    So while any charger is in set-up (and ``calm_seconds`` after), automatic full
    collections are off (the oldest generation's threshold raised); the young
    collections still run, and they reclaim most of a set-up's garbage. Once calm
    the threshold is restored and one full collection runs at once (rather than
    at the next burst of allocations, which may be the next storm): one pause
    after the storm instead of several during it. Never deferred longer than
    ``defer_limit`` seconds. Only the oldest generation's threshold is touched:
    the young one and the freeze of the start-up heap are :mod:`csms.gc_tuning`'s.
    """

    _OFF = 1_000_000_000  # young collections between full ones: never, in practice

    def __init__(
        self,
        admission: ConnectAdmission,
        calm_seconds: float = 3.0,
        defer_limit: float = 300.0,
        check_every: float = 0.5,
    ) -> None:
        self.admission = admission
        self.calm_seconds = calm_seconds
        self.defer_limit = defer_limit
        self.check_every = check_every
        self.deferring_since: float | None = None
        self._normal_gen2 = gc.get_threshold()[2]  # what deferring replaces
        self._started = 0.0
        self._longest = 0.0  # of the full collections since the last log line

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._longest = max(self._longest, time.perf_counter() - self._started)

    async def run(self) -> None:
        gc.callbacks.append(self._on_collection)
        loop = asyncio.get_running_loop()
        last_busy = -self.calm_seconds
        try:
            while True:
                await asyncio.sleep(self.check_every)
                now = loop.time()
                if self.admission.in_setup:
                    last_busy = now
                self.step(now, busy=now - last_busy < self.calm_seconds)
        finally:
            gc.callbacks.remove(self._on_collection)
            if self.deferring_since is not None:
                self._set_gen2(self._normal_gen2)

    @staticmethod
    def _set_gen2(threshold: int) -> None:
        # Only the oldest generation's: the young one's is csms.gc_tuning's setting.
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, threshold)

    def step(self, now: float, busy: bool) -> None:
        """Defer full collections while ``busy`` (at most ``defer_limit`` s), else restore."""
        if busy and self.deferring_since is None:
            self.deferring_since = now
            self._normal_gen2 = gc.get_threshold()[2]
            self._set_gen2(self._OFF)
        elif self.deferring_since is not None and (
            not busy or now - self.deferring_since > self.defer_limit
        ):
            deferred = now - self.deferring_since
            self.deferring_since = None
            self._set_gen2(self._normal_gen2)
            # Now, while calm, rather than at the next burst of allocations (the next storm).
            started = time.perf_counter()
            gc.collect()
            log.info(
                "capacity.full_gc_after_setups",
                deferred_s=round(deferred, 1),
                took_ms=round((time.perf_counter() - started) * 1000),
            )
        if self._longest > 0.1:
            log.warning("capacity.full_gc_pause", longest_ms=round(self._longest * 1000))
        self._longest = 0.0
