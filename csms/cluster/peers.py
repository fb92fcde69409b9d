"""Whether another node's event bus listens on this database.

A node NOTIFYs ``csms_events`` after its commits so that the other nodes read
them at once (csms/bus.py). Alone -- one ``csms`` process, the common case --
nobody hears it, and each NOTIFY was a round trip and a Postgres transaction
per read (docs/profiling.md, "The cost below saturation"). So the bus asks,
every ``check_s``, whether another bus's LISTEN connection (application name
``csms-bus-listener``) is open on the database, and counts a node it has heard
a NOTIFY from lately as listening too. A node that starts listening NOTIFYs
once at once, so the others start notifying it without waiting for a check.
A NOTIFY skipped wrongly delays an event to the poll (1 s); it never loses one.
"""

from __future__ import annotations

import asyncpg
import structlog

log = structlog.get_logger(__name__)

LISTENER_NAME = "csms-bus-listener"  # application_name of every node's LISTEN connection


class Peers:
    def __init__(self, check_s: float = 2.0, heard_s: float = 30.0) -> None:
        self.check_s = check_s  # between two looks at pg_stat_activity
        self.heard_s = heard_s  # a node heard from this recently counts as listening
        self.listening = True  # until the first check: notify (the safe side)
        self._checked_at: float | None = None
        self._heard_at: float | None = None

    def heard(self, now: float) -> None:
        """Another node NOTIFYed (it listens)."""
        self._heard_at = now
        self.listening = True

    async def check(self, listener: asyncpg.Connection, now: float) -> None:
        """Look again, at most every ``check_s``, on the bus's own LISTEN connection."""
        if self._checked_at is not None and now - self._checked_at < self.check_s:
            return
        self._checked_at = now
        try:
            others = await listener.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = $1 AND pid <> pg_backend_pid()",
                LISTENER_NAME,
                timeout=self.check_s,  # never hold the bus's reader for long
            )
        except Exception as exc:  # unknown: keep notifying
            log.warning("bus.peers_check_failed", error=repr(exc))
            others = 1
        # Heard lately: listening even where pg_stat_activity does not show it (a
        # pooler that renames sessions, say).
        heard = self._heard_at is not None and now - self._heard_at < self.heard_s
        self.listening = bool(others) or heard
