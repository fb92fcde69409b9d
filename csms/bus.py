"""Every node's committed events, to every in-process consumer, in order, none dropped.

The bus is a reader of the events table (:mod:`csms.cluster.feed`), not a
queue of this process's events: each CSMS node tails the table in feed order
— the order of commits, so in order per charger — and hands the rows to its
subscribers. What another node stored is therefore seen here too, and a
rolled-back transaction is never seen at all.

Delivery (see docs/cluster-events.md):

* one reader task per node reads pages of rows into a bounded buffer of the
  newest ``buffer_size`` events; every subscriber keeps its own cursor into
  it. A subscriber that falls further behind than the buffer reads its
  missing events from the table itself, a page at a time (memory stays
  bounded, nothing is dropped, and nobody waits for a slow subscriber);
* the reader wakes when this process committed something (``publish``,
  called after commit as before), when another node says it did (LISTEN /
  NOTIFY on ``csms_events``: each node sends one coalesced NOTIFY after its
  own commits, at most one per read, and none while no other node listens),
  and every ``poll_interval`` seconds in any case, so a lost or skipped
  notification delays an event, never loses it;
* it reads at most every ``_MIN_READ_INTERVAL_S`` and NOTIFYs at most every
  ``_NOTIFY_INTERVAL_S``: below saturation each read and NOTIFY was a round
  trip and a transaction for one or two events (docs/profiling.md, "The cost
  below saturation");
* a subscription may name what it wants (``wants``, asked of each row's head:
  type, charger, written here): the payloads of rows no subscriber of this node
  wants are not fetched nor decoded — with several workers most rows are the
  other workers' meter values (:mod:`csms.cluster.subscription`);
* a once-per-cluster consumer (alert engine, history writer) subscribes with
  :meth:`EventBus.subscribe_at` from a position stored in ``feed_cursors``, so
  the node that takes its lease over resumes where the last holder stopped.

Nothing is delivered before the row is behind the horizon of running
transactions, so the latency of an event is one read after its commit (plus
the duration of any longer write transaction running at that moment).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from csms.cluster import feed
from csms.cluster.feed import FeedRow, Interest, Position, WrittenHere
from csms.cluster.leases import bounded
from csms.cluster.peers import LISTENER_NAME, Peers
from csms.cluster.subscription import Subscription
from csms.events import Event

__all__ = ["CHANNEL", "EventBus", "Interest", "Subscription"]

log = structlog.get_logger(__name__)

CHANNEL = "csms_events"
_BLOCKED_RETRY_MAX_S = 0.01
_HELD_BACK_WARN_S = 1.0
# Reads at most every 25 ms (was 2: a read and a NOTIFY per one or two calls below
# saturation); subscribers (none on a charger's answer path) wait that much. NOTIFYs at
# most every 50 ms: a busy node reads for its own commits anyway (and gets the others'
# rows with them); a NOTIFY matters to an idle one, for which 50 ms is soon enough.
_MIN_READ_INTERVAL_S = 0.025
_NOTIFY_INTERVAL_S = 0.050
_PAYLOADS_APART_FROM = 16  # rows in the last page: read payloads apart (feed.read_after)
_LISTEN_RETRY_S = 5.0  # between attempts to re-open a lost LISTEN connection


def _NOTHING(row: FeedRow) -> bool:
    return False


class EventBus:
    """This node's reader of the cluster-wide event feed and its subscribers' cursors."""

    def __init__(
        self,
        *,
        buffer_size: int = 10_000,
        page_size: int = 500,
        poll_interval: float = 1.0,
        retention_hours: float = 168.0,
    ) -> None:
        self.buffer_size = buffer_size
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.retention_hours = retention_hours
        self._pool: asyncpg.Pool | None = None
        self._dsn: str | None = None
        self._buffer: deque[FeedRow] = deque()
        self._base_seq = 0  # sequence number of _buffer[0]
        self._next_seq = 0  # sequence number the next buffered row gets
        self.position: Position = feed.START  # newest row read
        self.started_at: Position = feed.START  # the tail when this node started reading
        self._arrived = asyncio.Event()  # replaced after each batch: wakes waiting subscribers
        self._wake = asyncio.Event()
        self._local_commits = False  # something committed here since the last NOTIFY
        self._notified_at = -_NOTIFY_INTERVAL_S  # loop time of the last NOTIFY sent
        self._listener: asyncpg.Connection | None = None
        self._listen_tried_at = -_LISTEN_RETRY_S
        self.peers = Peers()  # does another node listen (then NOTIFY after local commits)
        self.notifies = 0  # NOTIFYs sent (for tests and diagnostics)
        self._reader: asyncio.Task[None] | None = None
        self._subscriptions: list[Subscription] = []
        self.reads = 0
        self._last_page = 0  # rows of the last read
        self._held_since: float | None = None  # loop time since delivery has been held back
        self._held_warned = False
        # Events this process stored as they are: their rows need no decoding here.
        self.written_here = WrittenHere()
        self.committed_here: list[Callable[[Event | None], None]] = []  # hooks: told in publish()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "start() first"
        return self._pool

    @property
    def started(self) -> bool:
        return self._reader is not None

    async def start(self, pool: asyncpg.Pool, dsn: str | None = None) -> None:
        """Start reading at the current tail; ``dsn`` enables LISTEN/NOTIFY wake-ups."""
        self._pool = pool
        self._dsn = dsn
        async with pool.acquire() as conn:
            self.position = self.started_at = await feed.tail(conn)
        await self._listen()
        self._reader = asyncio.create_task(self._read_forever(), name="bus.reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await bounded(self._listener.close(), 2)
            self._listener = None

    # -- subscribers ------------------------------------------------------------------

    def subscribe(self, name: str, wants: Interest | None = None) -> Subscription:
        """A cursor at the live tail: every event committed from now on (that it ``wants``).

        ``wants`` (None: every event) is asked of each row's head (type, charger,
        ``local``); the rows no subscriber of this node wants are neither fetched nor
        decoded here. It may change its answer over time (a row it wants later is
        fetched then); keep it cheap, it is asked for every row, up to twice.
        """
        subscription = Subscription(self, name, self.position, self._next_seq, wants)
        self._subscriptions.append(subscription)
        return subscription

    async def subscribe_at(
        self,
        name: str,
        position: Position,
        *,
        saved_at: datetime | None = None,
        wants: Interest | None = None,
    ) -> Subscription:
        """A cursor after ``position`` (a stored cursor): older events come from the table.

        ``saved_at``: when the cursor was stored; older than the outbox retention,
        the events after it may have been pruned, and that is logged as an error.
        """
        limit = timedelta(hours=self.retention_hours)
        if saved_at is not None and datetime.now(UTC) - saved_at > limit:
            log.error(
                "bus.cursor_older_than_retention",
                subscriber=name,
                cursor_saved_at=saved_at.isoformat(),
                retention_hours=self.retention_hours,
                detail="events after the cursor may have been pruned from the outbox: lost",
            )
        subscription = Subscription(self, name, position, self._base_seq - 1, wants)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    def publish(self, event: Event | None = None, *, stored_as_is: bool = False) -> None:
        """Say that this process committed an event (call after commit): read it now.

        Subscribers still get it from the table, with every other node's events, in
        feed order. ``stored_as_is``: the event's row was written from this very
        object (payload and envelope), so when the reader meets that row it hands
        out this object instead of decoding the row again (the same values).
        """
        if stored_as_is and event is not None:
            self.written_here.add(event)
        elif event is not None:
            self.written_here.mark(event.event_id)  # its row is this process's own (local)
        self._local_commits = True
        self._wake.set()
        for hook in self.committed_here if event is not None else ():  # in-process hints
            hook(event)  # (smart charging), not a delivery: subscribers still get the row

    async def caught_up(self, within: float = 5.0) -> bool:
        """Wait until everything committed before this call has been read (False: timed out)."""
        async with self.pool.acquire() as conn:
            target = await feed.tail(conn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.position < target:
            if loop.time() > deadline or self._reader is None:
                return False
            self._wake.set()
            await asyncio.sleep(0.005)
        return True

    # -- the reader -------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._dsn is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._listen_tried_at < _LISTEN_RETRY_S:
            return
        self._listen_tried_at = loop.time()
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
            )
            await conn.add_listener(CHANNEL, self._notified)
            # Tell the nodes that skip their NOTIFYs while nobody listens that we do.
            await conn.execute(f"NOTIFY {CHANNEL}, 'listening'")
        except Exception as exc:  # polling still delivers everything, a second later
            log.warning("bus.listen_failed", error=repr(exc), detail="polling only")
            if conn is not None:
                conn.terminate()
            return
        self._listener = conn

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        # The receiving connection's own pid: ours even before _listen has stored it.
        if isinstance(conn, asyncpg.Connection) and pid == conn.get_server_pid():
            return  # our own notification: this node has read (or will read) it already
        self.peers.heard(asyncio.get_running_loop().time())
        self._wake.set()

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.0
        while True:
            read_at = loop.time()
            if self._listener is None or self._listener.is_closed():
                self._listener = None
                await self._listen()
            self._wake.clear()
            try:
                listener = self._listener
                if listener is not None:
                    await self.peers.check(listener, read_at)
                if listener is None or not self.peers.listening:
                    self._local_commits = False  # nobody to tell
                if self._local_commits and read_at - self._notified_at >= _NOTIFY_INTERVAL_S:
                    assert listener is not None
                    # Tell the other nodes while reading here (two connections, no wait).
                    self._local_commits = False
                    self._notified_at = read_at
                    self.notifies += 1
                    rows, blocked = (
                        await asyncio.gather(
                            listener.execute(f"NOTIFY {CHANNEL}"), self._read_page()
                        )
                    )[1]
                else:
                    rows, blocked = await self._read_page()
            except Exception as exc:
                log.warning("bus.read_failed", error=repr(exc))
                await asyncio.sleep(self.poll_interval)
                continue
            self.reads += 1
            with contextlib.suppress(Exception):  # a diagnostic never stops the reader
                await self._watch_horizon(blocked and not rows)
            if rows:
                self._append(rows)
                if len(rows) == self.page_size:
                    await asyncio.sleep(0)  # more are waiting: read on, let others run
                    continue
            # Committed rows held back by an older running transaction: retry soon
            # (at most ~100 reads/s while it runs; it usually ends within milliseconds).
            delay = min(max(delay * 2, 0.001), _BLOCKED_RETRY_MAX_S) if blocked else 0.0
            timeout = delay if blocked else self.poll_interval
            if self._local_commits:  # a NOTIFY owed: wake when it may go
                owed = self._notified_at + _NOTIFY_INTERVAL_S - loop.time()
                timeout = min(timeout, max(0.0, owed))
            with contextlib.suppress(TimeoutError):
                await bounded(self._wake.wait(), timeout)
            # Under load, wake-ups come with every commit: read in small batches instead
            # of once per commit (bounds the reader to ~500 queries/s per node).
            await asyncio.sleep(max(0.0, _MIN_READ_INTERVAL_S - (loop.time() - read_at)))

    async def _read_page(self) -> tuple[list[FeedRow], bool]:
        wanted = self._wanted()
        # Payloads apart (heads first, then the payloads of the wanted rows not held here):
        # when some rows are not wanted, the last page was large (a busy node), or this
        # node holds events it wrote (a page of only those needs no payload at all: in
        # one process the page reads sent ~80 payloads a read that it held already,
        # 10-20 % of Postgres's statement time; docs/profiling.md, third round).
        apart = (
            wanted is not None
            or self._last_page >= _PAYLOADS_APART_FROM
            or len(self.written_here) > 0
        )
        async with self.pool.acquire() as conn:
            rows, blocked = await feed.read_after(
                conn,
                self.position,
                self.page_size,
                self.written_here,
                payloads_apart=apart,
                wanted=wanted,
            )
        self._last_page = len(rows)
        return rows, blocked

    def _wanted(self) -> Interest | None:
        """What any subscriber of this node wants (None: every row)."""
        interests = [s.wants for s in self._subscriptions]
        if not interests:
            return _NOTHING
        if any(wants is None for wants in interests):
            return None
        return lambda row: any(wants(row) for wants in interests if wants is not None)

    def rows_from(self, seq: int) -> Sequence[FeedRow]:
        """The buffered rows from sequence number ``seq`` on (a copy: one page at most)."""
        start = max(0, seq - self._base_seq)
        end = min(len(self._buffer), start + self.page_size)
        return [self._buffer[i] for i in range(start, end)]

    async def fetch_payloads(self, rows: Sequence[FeedRow]) -> int:
        """Read the payloads a subscriber wants that the reader left out (by id)."""
        if not rows:
            return 0
        async with self.pool.acquire() as conn:
            return await feed.fetch_payloads(conn, rows)

    async def _watch_horizon(self, held: bool) -> None:
        """Say, once per episode, which transaction holds delivery back for over a second."""
        now = asyncio.get_running_loop().time()
        if not held:
            self._held_since, self._held_warned = None, False
            return
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since > _HELD_BACK_WARN_S and not self._held_warned:
            self._held_warned = True
            try:
                async with self.pool.acquire() as conn:
                    oldest = await feed.held_back_by(conn)
            except Exception:
                oldest = None
            log.warning(
                "bus.held_back",
                held_s=round(now - self._held_since, 1),
                oldest_transaction=oldest,
                detail="events wait for a long-running write transaction to end",
            )

    def _append(self, rows: list[FeedRow]) -> None:
        for row in rows:
            self._buffer.append(row)
            self._next_seq += 1
        self.position = rows[-1].position
        excess = len(self._buffer) - self.buffer_size
        for _ in range(max(0, excess)):
            self._buffer.popleft()
            self._base_seq += 1
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()
