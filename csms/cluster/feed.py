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

Decoding turns a row back into the :class:`~csms.events.Event` subclass of its
type (fields from the JSON payload, the envelope from the columns). A row this
process wrote itself from an event it still holds (:class:`WrittenHere`) is not
decoded: that event is handed out instead (the same values; decoding was the
largest cost of the bus, docs/profiling.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
import types
import typing
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from csms.events import Event, MeterSample
from csms.storage import Executor

log = structlog.get_logger(__name__)

Position = tuple[int, int]
"""(transaction id, event id) of a row; compare as tuples."""

START: Position = (0, 0)

_HEAD = "id, xact_id, event_id, type, charge_point_id, occurred_at, recorded_at"
_COLUMNS = f"{_HEAD}, payload::text"


@dataclass(frozen=True, slots=True)
class FeedRow:
    position: Position
    recorded_at: datetime
    event: Event | None  # None: a type no in-process consumer knows (still counted)


class WrittenHere:
    """Events this process stored exactly as they are, by id, until its reader meets their row.

    An event is added after its transaction committed (``EventBus.publish``), and
    only where the stored row was built from that very object (its payload from
    ``Event.payload_json()``, its envelope from its fields): decoding the row would give
    the same event back. Entries the reader never meets (it read the row before
    the event was added) are dropped oldest first beyond ``capacity``.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._events: dict[uuid.UUID, Event] = {}
        self.hits = 0  # rows handed out without decoding (for tests and diagnostics)

    def add(self, event: Event) -> None:
        events = self._events
        events[event.event_id] = event
        if len(events) > self.capacity:
            del events[next(iter(events))]

    def __len__(self) -> int:
        return len(self._events)

    def take(self, row: asyncpg.Record) -> Event | None:
        """The event stored as ``row`` if this process holds it (then forgotten), else None."""
        event = self._events.pop(row["event_id"], None)
        if event is None or event.type != row["type"]:
            return None
        if event.charge_point_id != row["charge_point_id"]:
            return None
        stored_at: datetime = row["occurred_at"]
        if event.occurred_at.tzinfo is not stored_at.tzinfo:
            # The charger's own offset (+02:00): a decoded row has the column's UTC.
            event = dataclasses.replace(event, occurred_at=stored_at)
        self.hits += 1
        return event


async def read_after(
    conn: Executor,
    after: Position,
    limit: int,
    written_here: WrittenHere | None = None,
    *,
    payloads_apart: bool = False,
) -> tuple[list[FeedRow], bool]:
    """Up to ``limit`` committed rows after ``after``, in feed order, and whether more wait.

    ``payloads_apart``: read the rows without their payloads, then the payloads of
    only the rows ``written_here`` does not hold, by id. Sending a payload (jsonb as
    text) is ~90 % of what a row costs Postgres, and a node does not need the
    payloads of its own rows: worth the second round trip for a large page (a busy
    node), not for the one or two rows of a read below saturation.

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
    if payloads_apart:
        return await _feed_rows_apart(conn, found, written_here), blocked
    return await _feed_rows(found, written_here), blocked


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
    return await _feed_rows(rows)


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


# -- decoding ---------------------------------------------------------------------------


_DECODE_SLICE = 50  # rows decoded between two turns of the loop (a page is up to 500)


async def _feed_rows(
    rows: list[asyncpg.Record], written_here: WrittenHere | None = None
) -> list[FeedRow]:
    """Decode a page of rows, letting the loop run between slices.

    Decoding an event (its JSON and its dataclass) costs tens of microseconds; a full
    page in one go held the chargers' loop for over 100 ms (docs/profiling.md).
    """
    decoded: list[FeedRow] = []
    for start in range(0, len(rows), _DECODE_SLICE):
        if start:
            await asyncio.sleep(0)
        decoded.extend(_feed_row(r, written_here) for r in rows[start : start + _DECODE_SLICE])
    return decoded


async def _feed_rows_apart(
    conn: Executor, rows: list[asyncpg.Record], written_here: WrittenHere | None
) -> list[FeedRow]:
    """Rows read without payloads: this node's own from ``written_here``, the rest by id."""
    known = [None if written_here is None else written_here.take(row) for row in rows]
    missing = [row["id"] for row, event in zip(rows, known, strict=True) if event is None]
    payloads: dict[int, str] = {}
    if missing:
        for found in await conn.fetch(
            "SELECT id, payload::text FROM events WHERE id = ANY($1::bigint[])", missing
        ):
            payloads[found["id"]] = found["payload"]
    decoded: list[FeedRow] = []
    for n, (row, event) in enumerate(zip(rows, known, strict=True)):
        if event is not None:
            decoded.append(FeedRow(_position(row), row["recorded_at"], event))
            continue
        if n and n % _DECODE_SLICE == 0:
            await asyncio.sleep(0)
        decoded.append(_decoded(row, payloads.get(row["id"])))
    return decoded


def _position(row: asyncpg.Record) -> Position:
    return (int(row["xact_id"]), int(row["id"]))


def _feed_row(row: asyncpg.Record, written_here: WrittenHere | None = None) -> FeedRow:
    known = None if written_here is None else written_here.take(row)
    if known is not None:
        return FeedRow(_position(row), row["recorded_at"], known)
    return _decoded(row, row["payload"])


def _decoded(row: asyncpg.Record, payload: str | None) -> FeedRow:
    try:
        if payload is None:  # gone between the two reads (pruned): cannot be decoded
            raise LookupError("no payload")
        event = decode(
            row["type"],
            row["charge_point_id"],
            row["occurred_at"],
            row["event_id"],
            json.loads(payload),
        )
    except Exception as exc:  # one odd row (older schema, hand-written) never stops the feed
        event = None
        log.warning("feed.undecodable_event", id=row["id"], type=row["type"], error=repr(exc))
    return FeedRow(_position(row), row["recorded_at"], event)


def event_classes() -> dict[str, type[Event]]:
    """Every known event class by type (plugins' classes once their modules are imported)."""
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            # @dataclass(slots=True) replaces a class: the first one lingers as a subclass.
            module = sys.modules.get(sub.__module__)
            if getattr(module, sub.__qualname__, None) is sub:
                found.setdefault(sub.type, sub)
            pending.append(sub)
    return found


_CLASSES: dict[str, type[Event]] = {}
Converter = typing.Callable[[Any], Any]
# Per event class: (field, converter or None for a JSON value kept as it is), built
# once from the type hints. Other nodes' events are all decoded here (every node reads
# them), so looking the hints up per field and value cost a node of two workers a
# tenth of its CPU.
_FIELDS: dict[type[Event], tuple[tuple[str, Converter | None], ...]] = {}


def decode(
    type_: str, charge_point_id: str, occurred_at: datetime, event_id: uuid.UUID, payload: Any
) -> Event | None:
    """The event a stored row describes, or None for a type no class is known for."""
    cls = _CLASSES.get(type_)
    if cls is None:
        _CLASSES.update(event_classes())
        cls = _CLASSES.get(type_)
        if cls is None:
            return None
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls)
        fields = _FIELDS[cls] = tuple(
            (f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)
        )
    values: dict[str, Any] = {}
    for name, convert in fields:
        if name in payload:
            value = payload[name]
            values[name] = value if convert is None or value is None else convert(value)
    return cls(
        charge_point_id=charge_point_id, occurred_at=occurred_at, event_id=event_id, **values
    )


def _convert(hint: Any, value: Any) -> Any:
    """A JSON value back into the type ``hint`` names (the inverse of Event.payload)."""
    if value is None:
        return None
    convert = _converter(hint)
    return value if convert is None else convert(value)


def _converter(hint: Any) -> Converter | None:
    """What turns a JSON value (not None) into the type ``hint`` names; None: as it is."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(options[0]) if len(options) == 1 else None
    if origin is tuple:
        inner = _converter(typing.get_args(hint)[0])
        if inner is None:
            return lambda value: tuple(_iterable(value))
        return lambda value: tuple(None if v is None else inner(v) for v in _iterable(value))
    if hint is datetime:
        return datetime.fromisoformat
    if hint is uuid.UUID:
        return uuid.UUID
    if hint is MeterSample:
        return _meter_sample
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint is float:
        return _float
    return None


def _meter_sample(value: dict[str, Any]) -> MeterSample:
    return MeterSample(**{**value, "sampled_at": datetime.fromisoformat(value["sampled_at"])})


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value


def _iterable(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple) else (value,)
