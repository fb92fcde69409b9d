"""A LISTEN on a connection of its own, re-opened whenever it drops.

A LISTEN must hold its connection for as long as it listens; taken from the
pool, that connection would be missing from the chargers' work for ever (with
a small pool, all of it). :func:`listen_forever` opens its own connection from
the DSN instead and, when the server or the network drops it, opens a new one
after a pause. Notifications sent while no connection listened are lost, so
``on_connected`` runs after every (re)connect: the place to re-read what a
missed notification would have said.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Notify = Callable[[Any, int, str, object], None]  # (connection, pid, channel, payload)


async def listen_forever(
    dsn: str,
    channel: str,
    on_notify: Notify,
    on_connected: Callable[[], Awaitable[None]] | None = None,
    reconnect_seconds: float = 1.0,
) -> None:
    """LISTEN on ``channel`` until cancelled, reconnecting after ``reconnect_seconds``."""
    while True:
        closed = asyncio.Event()
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("listen.connect_failed", channel=channel, error=str(error))
            await asyncio.sleep(reconnect_seconds)
            continue
        try:
            conn.add_termination_listener(functools.partial(_set, closed))
            await conn.add_listener(channel, on_notify)
            if on_connected is not None:
                await on_connected()
            await closed.wait()
            log.warning("listen.connection_lost", channel=channel)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=2))
        await asyncio.sleep(reconnect_seconds)


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()
