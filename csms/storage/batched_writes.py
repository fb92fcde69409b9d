"""The bulk writers group commit uses (:mod:`csms.storage.group_commit`).

Each writes the messages of one kind from one batch segment -- at most one
message per charger -- in a few statements instead of a few per message, with
the same rules as the one-message path it stands for:

* :data:`METER_SAMPLED` -- :func:`csms.storage.event_log.record_meter_sampled`
  (MeterValues): one statement for all;
* :data:`CONNECTOR_STATUS` -- ``CentralSystem._record_in`` for a StatusNotification:
  resend check, the connector's status and the event, one statement for all;
* :data:`SESSION_EVENTS` -- ``CentralSystem._session_event_in`` for a
  TransactionEvent Updated or a session end (2.0.1 Ended, 1.6 StopTransaction)
  without an id token (most of them: periodic meter values, and ends): resend
  check, the charger's session lock, the session upsert (an end's stop reading
  in it), its samples and readings, and the event with its session snapshot, one
  statement for all (a batch of only these needs no BEGIN and COMMIT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from csms.events import (
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionUpdated,
)
from csms.storage import Executor, sessions
from csms.storage.chargers import CONNECTOR_STATUS_UPSERT
from csms.storage.event_log import NEW_EVENTS_ONLY, RESEND
from csms.storage.sessions import SessionRef, readings_assignment

# -- Samples, as four array arguments ----------------------------------------------------

# A sample's five text columns go as one two-dimensional text[] (a row per column):
# asyncpg checks each element of an array argument for being an array itself (two
# Python-level ``collections.abc`` isinstance checks for a string), but of a nested
# one only the first row's elements, so five rows of S strings cost S checks, not 5 S.
# The row of mostly NULL ``phase`` goes first (a NULL costs one check, not two).
_SAMPLE_TEXTS = ("phase", "measurand", "location", "context", "unit")


def _sample_unnest(first: int) -> str:
    """The FROM item of the samples given as ``$first``..``$first+3`` (see above)."""
    index, sampled_at, texts, value = (f"${first + k}" for k in range(4))
    rows = ", ".join(f"({texts}::text[])[{row}:{row}]" for row in range(1, 6))
    return (
        f"unnest({index}::int[], {sampled_at}::timestamptz[], {rows}, {value}::float8[])"
        f" AS x(i, sampled_at, {', '.join(_SAMPLE_TEXTS)}, value)"
    )


# -- MeterValues -------------------------------------------------------------------------

_READINGS_FROM_BATCH = readings_assignment("m.first_wh", "m.first_at", "m.last_wh", "m.last_at")
_RECORD_METER_SAMPLED_MANY = f"""
    WITH ev AS (
        SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[], $5::int[],
                             $6::int[], $7::timestamptz[], $8::text[], $9::float8[],
                             $10::timestamptz[], $11::float8[], $12::timestamptz[])
        AS e(i, event_id, charge_point_id, transaction_id, evse_id, connector_id,
             occurred_at, payload, first_wh, first_at, last_wh, last_at)
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT event_id, $17, charge_point_id, evse_id, connector_id, occurred_at,
               payload::jsonb
        FROM ev ORDER BY i
        {NEW_EVENTS_ONLY}
    ), marked AS (
        SELECT ev.*, s.id AS session_id, {RESEND} AS duplicate
        FROM ev LEFT JOIN sessions s
          ON s.charge_point_id = ev.charge_point_id AND s.transaction_id = ev.transaction_id
        LEFT JOIN event ON event.event_id = ev.event_id
    ), samples AS (
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT m.charge_point_id, m.session_id, m.evse_id, m.connector_id, x.sampled_at,
               x.measurand, x.phase, x.location, x.context, x.value, x.unit
        FROM {_sample_unnest(13)}
        JOIN marked m ON m.i = x.i
        WHERE NOT m.duplicate
    ), readings AS (
        UPDATE sessions SET {_READINGS_FROM_BATCH}
        FROM marked m
        WHERE sessions.id = m.session_id AND m.first_at IS NOT NULL AND NOT m.duplicate
    )
    SELECT i, session_id, duplicate FROM marked ORDER BY i
"""


def _payload(event: Any) -> str:
    text: str = event.payload_json()
    return text


def _sample_rows(indexed: Sequence[tuple[int, Sequence[MeterSample]]]) -> list[Any]:
    """The arguments of :func:`_sample_unnest`: index, sampled_at, the texts, value."""
    rows = [
        (index, s.sampled_at, s.phase, s.measurand, s.location, s.context, s.unit, s.value)
        for index, samples in indexed
        for s in samples
    ]
    if not rows:
        return [(), (), (), ()]  # an empty texts array: its slices are empty too
    index, sampled_at, *texts, value = _columns(rows, 8)
    return [index, sampled_at, [list(column) for column in texts], value]


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    """The rows' columns, one sequence each (asyncpg takes a tuple as an array).

    ``zip(*rows)`` transposes in C: a column per argument without a Python-level
    append per value (64 sample values per 8-sample message).
    """
    if not rows:
        return [() for _ in range(width)]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if len(columns) != width:
        raise ValueError(f"rows of {len(columns)} values where {width} are expected")
    return columns


async def record_meter_sampled_many(
    conn: Executor, events: Sequence[MeterSampled]
) -> list[tuple[int | None, bool]]:
    """Per event in order: the id of its session if known, and whether it was a resend."""
    rows = [
        (
            index,
            e.event_id,
            e.charge_point_id,
            e.transaction_id,
            e.evse_id,
            e.connector_id,
            e.occurred_at,
            _payload(e),
            *sessions.register_readings(e.samples),
        )
        for index, e in enumerate(events)
    ]
    samples = _sample_rows([(index, e.samples) for index, e in enumerate(events)])
    result = await conn.fetch(
        _RECORD_METER_SAMPLED_MANY, *_columns(rows, 12), *samples, MeterSampled.type
    )
    return [
        (None if r["session_id"] is None else int(r["session_id"]), bool(r["duplicate"]))
        for r in result
    ]


class MeterSampledWriter:
    name = "meter_sampled"
    single_statement = True

    async def __call__(self, conn: Executor, items: Sequence[Any]) -> list[Any]:
        return list(await record_meter_sampled_many(conn, items))


METER_SAMPLED = MeterSampledWriter()

# -- StatusNotification ------------------------------------------------------------------

_RECORD_STATUS_MANY = f"""
    WITH x AS (
        SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::int[], $5::int[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::timestamptz[], $12::text[])
             AS x(i, event_id, cp, evse_id, connector_id, status, detail, error_code, info,
                  vendor_error_code, at, payload)
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT event_id, $13, cp, evse_id, connector_id, at, payload::jsonb FROM x ORDER BY i
        {NEW_EVENTS_ONLY}
    ), marked AS (
        SELECT x.*, {RESEND} AS duplicate
        FROM x LEFT JOIN event ON event.event_id = x.event_id
    ), connector AS (
        INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, detail,
                                error_code, info, vendor_error_code, status_at)
        SELECT cp, evse_id, connector_id, status, detail, error_code, info, vendor_error_code, at
        FROM marked WHERE NOT duplicate ORDER BY i
        {CONNECTOR_STATUS_UPSERT}
    )
    SELECT i, duplicate FROM marked ORDER BY i
"""


async def record_statuses(conn: Executor, events: Sequence[ConnectorStatusChanged]) -> list[bool]:
    """Per event in order: whether it was stored (False: a resend, nothing written)."""
    rows = [
        (
            index,
            e.event_id,
            e.charge_point_id,
            e.evse_id,
            e.connector_id,
            e.status.value,
            e.detail,
            e.error_code,
            e.info,
            e.vendor_error_code,
            e.occurred_at,
            _payload(e),
        )
        for index, e in enumerate(events)
    ]
    result = await conn.fetch(_RECORD_STATUS_MANY, *_columns(rows, 12), ConnectorStatusChanged.type)
    return [not r["duplicate"] for r in result]


class ConnectorStatusWriter:
    name = "connector_status"
    single_statement = True

    async def __call__(self, conn: Executor, items: Sequence[Any]) -> list[Any]:
        return await record_statuses(conn, items)


CONNECTOR_STATUS = ConnectorStatusWriter()

# -- TransactionEvent Updated, session ends --------------------------------------------

# One statement for a segment's updates and ends (it was three for the updates: the
# locks and resend check, the upsert, the samples and events; an end was a transaction
# of its own). The upsert's arguments are $1..$21
# (:func:`csms.storage.sessions.upsert_columns`, ``x.i`` the event's index; an end's
# stop reading is set by the upsert itself); the chargers' session locks are taken
# (sorted: two statements never wait for each other) before any row is written, as
# a start's statement does (csms.storage.session_events); a resend's row is skipped;
# the event's session snapshot is the upsert's RETURNING, its type per row.
# The snapshot is the statement's, taken before the lock: a concurrent holder's rows are
# still seen by the upsert (ON CONFLICT reads the latest row version), and an event it
# stored that the resend check missed fails this statement on events' unique event_id
# (the batch falls back to one message at a time, where it is found as a resend).
_RECORD_SESSION_EVENTS = f"""
    WITH seen AS (
        SELECT (SELECT count(*) FROM (
                    SELECT pg_advisory_xact_lock($22, hashtext(cp)) AS locked
                    FROM unnest($1::text[]) AS cp ORDER BY cp) AS l) AS locks,
               ARRAY(SELECT event_id FROM events WHERE event_id = ANY($23::uuid[])) AS stored
    ), session AS (
        {
    sessions.upsert_sql(
        "WHERE (SELECT locks FROM seen) >= 0"
        " AND NOT ($23::uuid[])[x.i + 1] = ANY((SELECT stored FROM seen)::uuid[])"
    )
}
        RETURNING s.id, s.charge_point_id, s.transaction_id, {sessions.context_sql("s")} AS context
    ), written AS (
        SELECT k.i, session.id, session.context
        FROM unnest($1::text[], $3::text[], $16::int[]) AS k(cp, tx, i)
        JOIN session ON session.charge_point_id = k.cp AND session.transaction_id = k.tx
    ), samples AS (
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT ($1::text[])[w.i + 1], w.id, ($4::int[])[w.i + 1], ($5::int[])[w.i + 1],
               x.sampled_at, x.measurand, x.phase, x.location, x.context, x.value, x.unit
        FROM {_sample_unnest(24)}
        JOIN written w ON w.i = x.i
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload, context)
        SELECT ($23::uuid[])[w.i + 1], ($28::text[])[w.i + 1], ($1::text[])[w.i + 1],
               ($4::int[])[w.i + 1], ($5::int[])[w.i + 1], ($29::timestamptz[])[w.i + 1],
               ($30::text[])[w.i + 1]::jsonb, w.context
        FROM written w ORDER BY w.i
    )
    SELECT ARRAY(SELECT i FROM written ORDER BY i) AS i,
           ARRAY(SELECT id FROM written ORDER BY i) AS id
"""

SessionEvent = SessionUpdated | SessionEnded


async def record_session_events(
    conn: Executor, events: Sequence[tuple[SessionEvent, Protocol]]
) -> list[tuple[None, SessionRef | None]]:
    """Per event in order: (no authorization: none has an id token, its session; None for
    a resend, which writes nothing).

    At most one event per charger (a batch segment): one statement, atomic on its own.
    """
    stored = [event for event, _ in events]
    assert all(e.id_token is None for e in stored), "an id token needs its authorization"
    assert len({e.charge_point_id for e in stored}) == len(stored), "one event per charger"
    row = await conn.fetchrow(
        _RECORD_SESSION_EVENTS,
        *sessions.upsert_columns(
            [(event, protocol, None) for event, protocol in events],
            [sessions.register_readings(e.samples) for e in stored],
        ),
        sessions.SESSION_LOCK_NAMESPACE,
        [e.event_id for e in stored],
        *_sample_rows([(i, e.samples) for i, e in enumerate(stored)]),
        [e.type for e in stored],
        [e.occurred_at for e in stored],
        [_payload(e) for e in stored],
    )
    assert row is not None
    written = dict(zip(row["i"], row["id"], strict=True))
    refs: list[tuple[None, SessionRef | None]] = []
    for index, event in enumerate(stored):
        session_id = written.get(index)
        assert event.transaction_id is not None
        ref = None if session_id is None else SessionRef(session_id, event.transaction_id)
        refs.append((None, ref))
    return refs


class SessionEventsWriter:
    name = "session_events"
    single_statement = True

    async def __call__(self, conn: Executor, items: Sequence[Any]) -> list[Any]:
        return list(await record_session_events(conn, items))


SESSION_EVENTS = SessionEventsWriter()
