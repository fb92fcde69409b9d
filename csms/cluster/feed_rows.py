"""One row of the event feed, decoded only when a consumer wants it.

A :class:`FeedRow` carries the row's head (position, type, charger, times,
event id) from the first read; its payload may be fetched later and is
decoded on first use (:attr:`FeedRow.event`). A node's subscribers name what
they want (:data:`Interest`), so the rows none of them wants — most of them
the meter values of chargers held by another worker — are never fetched nor
decoded (docs/cluster-events.md, "What a node reads").
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import structlog

from csms.cluster.feed_decode import decode, parse
from csms.events import Event

log = structlog.get_logger(__name__)

Position = tuple[int, int]
"""(transaction id, event id) of a row; compare as tuples."""

_NOT_FETCHED: Any = object()  # the payload has not been read from the table yet


class FeedRow:
    """A committed event row: its head, and its event once fetched and decoded."""

    __slots__ = (
        "_decoded",
        "_event",
        "_payload",
        "charge_point_id",
        "event_id",
        "id",
        "local",
        "occurred_at",
        "position",
        "recorded_at",
        "type",
    )

    def __init__(
        self,
        position: Position,
        recorded_at: datetime,
        *,
        event_id: uuid.UUID,
        type: str,
        charge_point_id: str,
        occurred_at: datetime,
        event: Event | None = None,
        payload: Any = _NOT_FETCHED,
        local: bool = False,
    ) -> None:
        self.position = position
        self.id = position[1]
        self.recorded_at = recorded_at
        self.event_id = event_id
        self.type = type
        self.charge_point_id = charge_point_id
        self.occurred_at = occurred_at
        # Written by this very process (it published the event after its commit).
        self.local = local or event is not None
        self._payload = payload
        self._event = event
        self._decoded = event is not None

    @classmethod
    def of(cls, record: Any, event: Event | None = None, payload: Any = _NOT_FETCHED) -> FeedRow:
        """A row from a database record with the feed's head columns."""
        return cls(
            (int(record["xact_id"]), int(record["id"])),
            record["recorded_at"],
            event_id=record["event_id"],
            type=record["type"],
            charge_point_id=record["charge_point_id"],
            occurred_at=record["occurred_at"],
            event=event,
            payload=payload,
        )

    @property
    def fetched(self) -> bool:
        """Whether the event can be had without reading the table again."""
        return self._decoded or self._payload is not _NOT_FETCHED

    def set_payload(self, payload: str | None) -> None:
        """The payload read by id (None: the row is gone, pruned between the reads)."""
        if not self._decoded:
            self._payload = payload

    @property
    def event(self) -> Event | None:
        """The decoded event (None: a type no in-process consumer knows, or undecodable)."""
        if self._decoded:
            return self._event
        payload = self._payload
        if payload is _NOT_FETCHED:
            raise LookupError(f"the payload of event row {self.id} was not fetched")
        try:
            if payload is None:  # gone between the two reads (pruned): cannot be decoded
                raise LookupError("no payload")
            values = parse(self.type, payload)
            self._event = decode(
                self.type, self.charge_point_id, self.occurred_at, self.event_id, values
            )
        except Exception as exc:  # one odd row (older schema, hand-written) never stops the feed
            self._event = None
            log.warning("feed.undecodable_event", id=self.id, type=self.type, error=repr(exc))
        self._decoded = True
        self._payload = None
        return self._event


Interest = Callable[[FeedRow], bool]
"""Whether a subscriber wants a row (judged on its head: type, charger, ``local``)."""


def of_types(*types: str) -> Interest:
    """An interest in the rows of these event types only."""
    wanted = frozenset(types)
    return lambda row: row.type in wanted


class Holder(Protocol):
    """Who is connected here (``csms.router.ConnectionRegistry``)."""

    def get(self, charge_point_id: str, /) -> Any: ...


def held_here(holder: Holder, *types: str) -> Interest:
    """Rows of these types (all, if none named) of chargers held or stored here.

    For the per-node work that only the node holding the charger's socket does
    (asking it something, answering it): another worker's chargers are its own.
    """
    wanted = frozenset(types)

    def wants(row: FeedRow) -> bool:
        if wanted and row.type not in wanted:
            return False
        return row.local or holder.get(row.charge_point_id) is not None

    return wants


class WrittenHere:
    """Events this process stored, by id, until its reader meets their row.

    ``add``: the stored row was built from that very object (its payload from
    ``Event.payload_json()``, its envelope from its fields): decoding the row would
    give the same event back, so the object is handed out instead. ``mark``: the
    event was stored here in another form (the row must be decoded, but it is this
    process's own: :attr:`FeedRow.local`). Both are added after the transaction
    committed (``EventBus.publish``); entries the reader never meets (it read the
    row before the event was added) are dropped oldest first beyond ``capacity``.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._events: dict[uuid.UUID, Event] = {}
        self._ids: dict[uuid.UUID, None] = {}
        self.hits = 0  # rows handed out without decoding (for tests and diagnostics)

    def add(self, event: Event) -> None:
        events = self._events
        events[event.event_id] = event
        if len(events) > self.capacity:
            del events[next(iter(events))]

    def mark(self, event_id: uuid.UUID) -> None:
        ids = self._ids
        ids[event_id] = None
        if len(ids) > self.capacity:
            del ids[next(iter(ids))]

    def __len__(self) -> int:
        return len(self._events)

    def was_marked(self, event_id: uuid.UUID) -> bool:
        """Whether this process stored ``event_id`` (not as is); forgotten once asked."""
        return self._ids.pop(event_id, False) is None

    def take(self, row: Any) -> Event | None:
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
