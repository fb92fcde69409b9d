"""Draining a node (SIGTERM, rolling restart): hand its chargers to the other nodes.

The listening sockets are closed first (with SO_REUSEPORT the kernel sends new
connections to the other processes on the port; behind a load balancer the
failed health check does). Then each charger is closed with 1012 (service
restart) at its own moment of the drain window, evenly spaced with jitter, so
that the fleet reconnects to the other nodes as a trickle rather than a storm.

A charger is closed only when its connection is idle: no CALL of its being
handled (its answer is sent first), no CALL of ours waiting for its answer, no
frame of its received and not yet read (neither in websockets' queue nor in the
kernel's receive buffer). The check and the close frame happen
in the same step of the event loop, so every message that reached us before
the close frame is answered. A frame the charger sends after our close frame
cannot be answered (the WebSocket closing handshake forbids sending); OCPP
chargers resend an unanswered message after they reconnect.
"""

from __future__ import annotations

import asyncio
import fcntl
import random
import sys
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from websockets.protocol import State

from csms.connection import OcppConnection

log = structlog.get_logger(__name__)

SERVICE_RESTART = 1012  # RFC 6455 registry: "the server is restarting; reconnect"
_IDLE_POLL = 0.01


def close_times(count: int, window: float, rng: random.Random) -> list[float]:
    """Seconds from the drain's start at which to close each of ``count`` chargers.

    Evenly spaced slots of ``window / count`` with a uniformly random moment in
    each: never two closes bunched where plain random times would clump.
    """
    if count == 0:
        return []
    slot = window / count
    return [(index + rng.random()) * slot for index in range(count)]


def is_idle(connection: OcppConnection) -> bool:
    """Nothing in flight on this connection, in either direction (see the module doc)."""
    websocket = connection.websocket
    if websocket.protocol.state is not State.OPEN:
        return True
    if connection._pending:  # a command of ours awaits the charger's answer
        return False
    # Internals of websockets' reader (checked by tests/csms/test_drain.py): the
    # handler loop is parked in recv() and no frame waits in the queue.
    messages = websocket.recv_messages
    if not messages.get_in_progress or len(messages.frames) > 0:
        return False
    # Bytes the kernel has received for us but the (busy) loop has not read yet: a
    # frame the charger sent before our close, to be read and answered first.
    return _unread_bytes(websocket.transport) == 0


def _unread_bytes(transport: asyncio.Transport) -> int:
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return 0
    try:
        pending = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):  # ValueError: the socket is closed already (fd -1)
        return 0
    return int.from_bytes(pending, sys.byteorder, signed=True)


@dataclass
class DrainReport:
    chargers: int = 0
    closed_idle: int = 0  # closed with nothing in flight
    closed_busy: int = 0  # still busy after idle_timeout: closed anyway
    seconds: float = 0.0
    closers: list[asyncio.Task[None]] = field(default_factory=list, repr=False)


class Drainer:
    """Closes a set of connections over a window; :meth:`hurry` closes the rest now."""

    def __init__(self, window: float, idle_timeout: float, seed: int | None = None) -> None:
        self.window = window
        self.idle_timeout = idle_timeout
        self._rng = random.Random(seed)
        self._hurry = asyncio.Event()

    def hurry(self) -> None:
        """A second SIGTERM/SIGINT: close the chargers not closed yet without waiting."""
        self._hurry.set()

    async def drain(self, connections: Sequence[OcppConnection]) -> DrainReport:
        started = time.monotonic()
        order = list(connections)
        self._rng.shuffle(order)
        report = DrainReport(chargers=len(order))
        log.info("drain.started", chargers=len(order), window_s=self.window)
        for connection, at in zip(
            order, close_times(len(order), self.window, self._rng), strict=True
        ):
            delay = started + at - time.monotonic()
            if delay > 0 and not self._hurry.is_set():
                try:
                    await asyncio.wait_for(self._hurry.wait(), delay)
                except TimeoutError:
                    pass
            report.closers.append(asyncio.create_task(self._close(connection, report)))
        if report.closers:
            await asyncio.gather(*report.closers)
        report.seconds = time.monotonic() - started
        log.info(
            "drain.done",
            chargers=report.chargers,
            closed_busy=report.closed_busy,
            seconds=round(report.seconds, 2),
        )
        return report

    async def _close(self, connection: OcppConnection, report: DrainReport) -> None:
        try:
            await self._close_when_idle(connection, report)
        except Exception:  # one charger's trouble must not stop the drain of the others
            log.exception("drain.close_failed", charge_point_id=connection.id)

    async def _close_when_idle(self, connection: OcppConnection, report: DrainReport) -> None:
        deadline = time.monotonic() + self.idle_timeout
        # Polled: the idle state has no event of its own (most chargers are idle at once).
        while time.monotonic() < deadline:
            if is_idle(connection):
                break
            await asyncio.sleep(_IDLE_POLL)
        if is_idle(connection):
            report.closed_idle += 1
        else:
            report.closed_busy += 1
            log.warning("drain.closed_busy", charge_point_id=connection.id)
        # No await between the idle check and the close frame being queued.
        await connection.websocket.close(SERVICE_RESTART, "service restart")
