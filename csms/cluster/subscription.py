"""One in-process consumer's cursor into its node's event feed (:mod:`csms.bus`).

A subscription may name what it wants (an :data:`~csms.cluster.feed_rows.Interest`
over a row's head: its type, its charger, whether this process wrote it). The
rows it does not want only move its cursor on; the node's reader leaves the
payloads of rows no subscriber wants unread, and a wanted row whose payload was
not read (a subscriber that changed its mind, one resuming from a stored cursor)
is fetched by id before it is handed out — so what a subscriber is handed never
depends on what the others wanted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from csms.cluster import feed
from csms.cluster.feed import FeedRow, Interest, Position
from csms.events import Event

if TYPE_CHECKING:
    from csms.bus import EventBus

log = structlog.get_logger(__name__)

# A subscriber handed events without waiting (catching up a backlog, its handler
# never awaiting anything real) yields to the loop after this long: the charger
# sockets share the loop (docs/profiling.md, "Event-loop lag").
_SLICE_S = 0.002


class Subscription:
    """One consumer's cursor; iterate with ``await subscription.get()``."""

    def __init__(
        self,
        bus: EventBus,
        name: str,
        position: Position,
        next_seq: int,
        wants: Interest | None = None,
    ) -> None:
        self.name = name
        self._bus = bus
        self.wants = wants  # None: every event
        self.position = position  # feed position of the last row passed
        self._next_seq = next_seq  # index into the bus's buffer of the next row
        self._page: deque[FeedRow] = deque()  # catch-up rows read from the table
        self._last_recorded_at: datetime | None = None
        self._warned_old = False
        self.caught_up_from_table = 0  # events this subscriber had to read itself
        self.fetched_late = 0  # wanted rows whose payloads the reader had left out
        self._slice_started = time.monotonic()  # since this subscriber last let others run

    @property
    def recorded_at(self) -> datetime:
        """When the last event handed out was stored (the server's clock)."""
        assert self._last_recorded_at is not None, "get() first"
        return self._last_recorded_at

    @property
    def pending(self) -> int:
        """Rows the bus has read that this subscriber has not passed yet (at least)."""
        return len(self._page) + max(0, self._bus._next_seq - self._next_seq)

    def empty(self) -> bool:
        return self.pending == 0

    async def get(self, within: float | None = None) -> Event:
        """The next wanted committed event after this cursor, waiting for one if none is new.

        ``within``: raise TimeoutError when no wanted event came within that many
        seconds. The timer is armed only when there is something to wait for (a
        consumer handed event after event, the once-per-cluster feeds under load,
        paid for a timer per event). Every ``_SLICE_S`` seconds of handing out
        events without waiting, it lets the loop run other work first (an ``await``
        of an event already there does not).
        """
        bus = self._bus
        deadline = None if within is None else time.monotonic() + within
        if time.monotonic() - self._slice_started > _SLICE_S:
            await asyncio.sleep(0)
            self._slice_started = time.monotonic()
        while True:
            row = self._peek()
            if row is None:
                if self._next_seq < bus._base_seq:
                    await self._retrying(self._catch_up())
                else:
                    await self._wait(bus._arrived.wait(), deadline)
                    self._slice_started = time.monotonic()
                continue
            wanted = row.position > self.position and (self.wants is None or self.wants(row))
            if wanted and not row.fetched:
                # Before the row is passed: a failed read leaves it next, not skipped.
                await self._wait(self._retrying(self._fetch_ahead()), deadline)
                continue
            self._advance()
            if row.position <= self.position:
                continue  # already handed out (a resumed cursor ahead of the buffer)
            self.position = row.position
            self._last_recorded_at = row.recorded_at
            if wanted:
                event = row.event
                if event is not None:
                    return event

    @staticmethod
    async def _wait(work: Coroutine[Any, Any, Any], deadline: float | None) -> None:
        """Await ``work``; past ``deadline`` (monotonic), TimeoutError (cursor unmoved)."""
        if deadline is None:
            await work
            return
        left = deadline - time.monotonic()
        if left <= 0:
            work.close()
            raise TimeoutError
        async with asyncio.timeout(left):
            await work

    async def _retrying(self, read: Coroutine[Any, Any, None]) -> None:
        """A read of the table; on failure (the database away) say so and wait, then go on.

        The caller reads the same rows again: its consumer never sees the error (its
        task would end), and never a row skipped.
        """
        try:
            await read
        except Exception as exc:
            log.warning("bus.subscriber_read_failed", subscriber=self.name, error=repr(exc))
            await asyncio.sleep(self._bus.poll_interval)

    async def _fetch_ahead(self) -> None:
        self.fetched_late += await self._bus.fetch_payloads(self._unfetched_ahead())

    def _peek(self) -> FeedRow | None:
        if self._page:
            return self._page[0]
        bus = self._bus
        index = self._next_seq - bus._base_seq
        if 0 <= index < len(bus._buffer):
            return bus._buffer[index]
        return None

    def _advance(self) -> None:
        if self._page:
            self._page.popleft()
        else:
            self._next_seq += 1

    def _unfetched_ahead(self) -> list[FeedRow]:
        """The next rows this subscriber wants whose payloads are not read (one page)."""
        rows = self._page if self._page else self._bus.rows_from(self._next_seq)
        found: list[FeedRow] = []
        for row in rows:
            if not row.fetched and (self.wants is None or self.wants(row)):
                found.append(row)
                if len(found) == self._bus.page_size:
                    break
        return found

    async def _catch_up(self) -> None:
        """Read the rows between this cursor and the buffer from the table."""
        bus = self._bus
        base = bus._base_seq
        before = bus._buffer[0].position if bus._buffer else (bus.position[0], bus.position[1] + 1)
        self._warn_if_pruned()
        async with bus.pool.acquire() as conn:
            rows = await feed.read_between(conn, self.position, before, bus.page_size)
        if rows:
            self.caught_up_from_table += len(rows)
            self._page.extend(rows)
        else:
            self._next_seq = max(self._next_seq, base)

    def _warn_if_pruned(self) -> None:
        last = self._last_recorded_at
        if self._warned_old or last is None:
            return
        if datetime.now(UTC) - last > timedelta(hours=self._bus.retention_hours):
            self._warned_old = True
            log.error(
                "bus.cursor_older_than_retention",
                subscriber=self.name,
                last_event_recorded_at=last.isoformat(),
                detail="events after it may have been pruned from the outbox: some are lost",
            )
