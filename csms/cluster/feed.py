"""Reading the events table as one ordered, cluster-wide feed of committed events.

A position in the feed is ``(xact_id, id)``: the id of the transaction that
wrote the row (column default ``pg_current_xact_id()``) and the row's id.
Rows are read in that order and only below the *horizon* — the oldest
transaction still running anywhere (``pg_snapshot_xmin`` of the reading
statement's snapshot). Every transaction below the horizon has ended, and its
rows are visible to that snapshot; every transaction that ends later has an id
at or above the horizon, so its rows sort after everything already read. A
cursor therefore never skips a row, whatever order concurrent writers commit
in. Per charger the order is the order of commits: a charger's messages are
stored one after the other, and a transaction that starts after another has
committed gets a larger id.

The price: a long-running write transaction anywhere in the database holds the
horizon back, so delivery waits for it (nothing is lost; :func:`read_after`
reports ``blocked`` so the reader can retry soon).

Rows come as :class:`~csms.cluster.feed_rows.FeedRow`: the head at once, the
payload decoded only when a consumer wants the event. A row this process wrote
itself from an event it still holds (:class:`WrittenHere`) is not decoded: that
event is handed out instead (the same values; decoding was the largest cost of
the bus, docs/profiling.md). With ``wanted`` a read leaves out the payloads no
subscriber of this node wants (docs/cluster-events.md, "What a node reads").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog

from csms.cluster.feed_decode import decode, event_classes
from csms.cluster.feed_rows import (
    FeedRow,
    Interest,
    Position,
    WrittenHere,
    held_here,
    of_types,
)
from csms.storage import Executor

log = structlog.get_logger(__name__)

__all__ = [
    "START",
    "FeedRow",
    "Interest",
    "Position",
    "WrittenHere",
    "decode",
    "event_classes",
    "held_here",
    "of_types",
]

START: Position = (0, 0)

_HEAD = "id, xact_id, event_id, type, charge_point_id, occurred_at, recorded_at"
_COLUMNS = f"{_HEAD}, payload::text"


async def read_after(
    conn: Executor,
    after: Position,
    limit: int,
    written_here: WrittenHere | None = None,
    *,
    payloads_apart: bool = False,
    wanted: Interest | None = None,
) -> tuple[list[FeedRow], bool]:
    """Up to ``limit`` committed rows after ``after``, in feed order, and whether more wait.

    ``payloads_apart``: read the rows without their payloads, then the payloads of
    only the rows ``written_here`` does not hold and ``wanted`` (None: every row)
    says yes to, by id. Sending a payload (jsonb as text) is ~90 % of what a row
    costs Postgres, and a node needs neither the payloads of its own rows nor
    those of rows none of its subscribers wants: worth the second round trip for
    a large page (a busy node), not for the one or two rows of a read below
    saturation. A row left out is fetched later if a consumer turns out to want
    it (:func:`fetch_payloads`).

    ``blocked`` is True when committed rows exist at or above the horizon, i.e. an
    older transaction that is still running keeps them back: read again soon.
    It is asked as ``max(xact_id) >= horizon``, which is one step down the
    ``events_feed`` index; ``EXISTS (... WHERE xact_id >= horizon)`` looked equal
    but was planned as a scan of the whole table on every read (the horizon is
    not known when the plan is made), 92 ms at 300,000 events.
    """
    rows = await conn.fetch(
        f"""
        WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon)
        SELECT e.*, (SELECT max(b.xact_id) FROM events b) >= h.horizon AS blocked
        FROM h LEFT JOIN LATERAL (
            SELECT {_HEAD if payloads_apart else _COLUMNS} FROM events
            WHERE xact_id < h.horizon AND (xact_id, id) > ($1::xid8, $2::bigint)
            ORDER BY xact_id, id
            LIMIT $3
        ) e ON true
        """,
        after[0],
        after[1],
        limit,
    )
    blocked = bool(rows[0]["blocked"]) if rows else False
    found = [r for r in rows if r["id"] is not None]
    if not payloads_apart:
        return [_feed_row(r, written_here) for r in found], blocked
    page: list[FeedRow] = []
    for record in found:
        known = None if written_here is None else written_here.take(record)
        row = FeedRow.of(record, known)
        if known is None and written_here is not None:
            row.local = written_here.was_marked(record["event_id"])
        page.append(row)
    await fetch_payloads(conn, [r for r in page if wanted is None or wanted(r)])
    return page, blocked


async def fetch_payloads(conn: Executor, rows: Sequence[FeedRow]) -> int:
    """Read the payloads of those ``rows`` not fetched yet, by id; return how many."""
    missing = {row.id: row for row in rows if not row.fetched}
    if not missing:
        return 0
    found = await conn.fetch(
        "SELECT id, payload::text FROM events WHERE id = ANY($1::bigint[])", list(missing)
    )
    for record in found:
        missing.pop(record["id"]).set_payload(record["payload"])
    for gone in missing.values():  # pruned between the two reads
        gone.set_payload(None)
    return len(found)


async def read_between(
    conn: Executor, after: Position, before: Position, limit: int
) -> list[FeedRow]:
    """Rows strictly between two positions already behind the horizon (a catch-up page)."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM events
        WHERE (xact_id, id) > ($1::xid8, $2::bigint) AND (xact_id, id) < ($3::xid8, $4::bigint)
        ORDER BY xact_id, id
        LIMIT $5
        """,
        after[0],
        after[1],
        before[0],
        before[1],
        limit,
    )
    return [_feed_row(r) for r in rows]


async def held_back_by(conn: Executor) -> dict[str, Any] | None:
    """The oldest running write transaction (what holds the horizon back), for a log line."""
    row = await conn.fetchrow(
        """
        SELECT pid, application_name, state, datname,
               extract(epoch FROM now() - xact_start)::float8 AS running_s,
               left(query, 200) AS query
        FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
        ORDER BY age(backend_xid) DESC LIMIT 1
        """
    )
    return None if row is None else dict(row)


async def tail(conn: Executor) -> Position:
    """The position of the newest row behind the horizon: a new reader starts after it."""
    row = await conn.fetchrow(
        """
        SELECT xact_id, id FROM events
        WHERE xact_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY xact_id DESC, id DESC LIMIT 1
        """
    )
    return START if row is None else (int(row["xact_id"]), int(row["id"]))


async def position_before(conn: Executor, at: datetime) -> Position:
    """A position just before the first event recorded at or after ``at`` (for replays)."""
    row = await conn.fetchrow(
        """
        SELECT xact_id, id FROM events
        WHERE recorded_at < $1 AND xact_id IS NOT NULL
        ORDER BY xact_id DESC, id DESC LIMIT 1
        """,
        at,
    )
    return START if row is None else (int(row["xact_id"]), int(row["id"]))


async def load_cursor(conn: Executor, name: str) -> Position | None:
    row = await conn.fetchrow("SELECT xact_id, event_id FROM feed_cursors WHERE name = $1", name)
    return None if row is None else (int(row["xact_id"]), int(row["event_id"]))


async def load_cursor_saved_at(conn: Executor, name: str) -> datetime | None:
    """When a consumer's cursor was last stored (None: never)."""
    saved: datetime | None = await conn.fetchval(
        "SELECT updated_at FROM feed_cursors WHERE name = $1", name
    )
    return saved


async def save_cursor(conn: Executor, name: str, position: Position) -> None:
    """Store a consumer's position; never moves it backwards."""
    await conn.execute(
        """
        INSERT INTO feed_cursors (name, xact_id, event_id, updated_at)
        VALUES ($1, $2::xid8, $3, now())
        ON CONFLICT (name) DO UPDATE
           SET xact_id = EXCLUDED.xact_id, event_id = EXCLUDED.event_id, updated_at = now()
         WHERE (feed_cursors.xact_id, feed_cursors.event_id)
               < (EXCLUDED.xact_id, EXCLUDED.event_id)
        """,
        name,
        position[0],
        position[1],
    )


def _feed_row(record: Any, written_here: WrittenHere | None = None) -> FeedRow:
    """A row read with its payload (decoded when its event is first asked for)."""
    known = None if written_here is None else written_here.take(record)
    if known is not None:
        return FeedRow.of(record, known)
    row = FeedRow.of(record, payload=record["payload"])
    if written_here is not None:
        row.local = written_here.was_marked(record["event_id"])
    return row
