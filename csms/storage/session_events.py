"""A transaction event's writes (start, update with a token, end) in one statement.

A session start or end was a dozen round trips -- the resend check, the
charger's session lock, the session upsert, its samples, its readings, its
stop reading, the event with its session snapshot -- each a ``write()``, a
``read()`` and a turn of the event loop for the CSMS and a parse/bind/execute
for Postgres. Here they are one statement each (CTEs): the session row is
written once (a second UPDATE of it in the same transaction re-ran the
foreign-key check of its charger), and the event's snapshot of the session is
the upsert's own ``RETURNING``. A start reads what it decides by first (its
charger's lock, the resend check, the id token) in one more round trip.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from csms.events import Protocol, SessionEnded, SessionStarted, SessionUpdated
from csms.storage import Executor, tokens
from csms.storage.event_log import SAMPLES_FROM_ARRAYS, sample_arrays
from csms.storage.sessions import (
    SESSION_LOCK_NAMESPACE,
    SessionRef,
    context_sql,
    register_readings,
    upsert_columns,
    upsert_sql,
)

_LOCK = "(SELECT count(*) FROM (SELECT pg_advisory_xact_lock({0}, hashtext({1}))) AS l)"


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a start decides by, read with its charger's session lock taken."""

    stored: dict[str, Any] | None  # the payload of this event if it is stored: a resend
    token: tokens.TokenRecord | None  # the id token, None if unknown or none given


_PREPARE = f"""
    SELECT {_LOCK.format("$1", "$2")} AS locks,
           (SELECT payload FROM events WHERE event_id = $3) AS stored, t.*
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL ({tokens.lookup_sql("$4::text")}) AS t ON true
"""


async def prepare(
    conn: Executor, charge_point_id: str, event_id: uuid.UUID, id_token: str | None
) -> Prepared:
    """Take the charger's session lock (until the transaction ends), read whether the event
    is stored and the id token: one round trip.

    The lock is taken here, before the statement that writes the session, so that
    statement's snapshot holds what the previous holder committed (a 1.6 start finds a
    repeated StartTransaction's session by its fields).
    """
    row = await conn.fetchrow(_PREPARE, SESSION_LOCK_NAMESPACE, charge_point_id, event_id, id_token)
    assert row is not None
    stored = None if row["stored"] is None else dict(json.loads(row["stored"]))
    return Prepared(stored, tokens.record_of(row))


_SESSION_WRITE_ARGS = 21  # upsert_columns
_RECORD = f"""
    WITH seen AS (
        SELECT {_LOCK.format("$22", "$23")} AS locks,
               EXISTS (SELECT 1 FROM events WHERE event_id = $24) AS duplicate
    ), session AS (
        {upsert_sql("WHERE (SELECT locks FROM seen) = 1 AND NOT (SELECT duplicate FROM seen)")}
        RETURNING s.id, s.transaction_id, {context_sql("s")} AS context
    ), samples AS (
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT $23, session.id, $25, $26, x.sampled_at, x.measurand, x.phase, x.location,
               x.context, x.value, x.unit
        FROM session, {SAMPLES_FROM_ARRAYS.format(*(f"${i}" for i in range(27, 34)))}
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload, context)
        SELECT $24, $34, $23, $25, $26, $35, $36::jsonb, session.context FROM session
    )
    SELECT (SELECT id FROM session) AS id, (SELECT duplicate FROM seen) AS duplicate
"""


async def record(
    conn: Executor,
    event: SessionStarted | SessionUpdated | SessionEnded,
    protocol: Protocol,
    auth_status: str | None,
) -> SessionRef | None:
    """Store a transaction event whose id the charger chose (2.0.1, every 1.6 stop) in
    ONE statement; None for a resend (nothing written).

    Takes the charger's session lock, checks the event is not stored, upserts the
    session (:func:`csms.storage.sessions.upsert_sql`: readings and, for an end, the
    stop reading in the same row version), inserts the samples and appends the event
    with the session as this statement left it.
    """
    assert event.transaction_id is not None
    evse_id, connector_id = event.evse
    row = await conn.fetchrow(
        _RECORD,
        *upsert_columns([(event, protocol, auth_status)], [register_readings(event.samples)]),
        SESSION_LOCK_NAMESPACE,
        event.charge_point_id,
        event.event_id,
        evse_id,
        connector_id,
        *sample_arrays(event.samples),
        event.type,
        event.occurred_at,
        event.payload_json(),
    )
    assert row is not None
    if row["duplicate"]:
        return None
    return SessionRef(row["id"], event.transaction_id)


_START_V16 = f"""
    WITH found AS (
        SELECT id, transaction_id FROM sessions
        WHERE charge_point_id = $1 AND protocol = $2 AND connector_id = $3
          AND id_token IS NOT DISTINCT FROM $4 AND started_at = $5
          AND meter_start_wh IS NOT DISTINCT FROM $6 AND NOT start_unknown
        ORDER BY id LIMIT 1
    ), created AS (
        INSERT INTO sessions AS s (charge_point_id, protocol, transaction_id, evse_id,
                                   connector_id, id_token, token_type, auth_status,
                                   reservation_id, started_at, meter_start_wh, meter_start_at,
                                   meter_last_wh, meter_last_at)
        SELECT $1, $2, nextval('transaction_id_seq')::text, $3, $3, $4, $7, $8, $9, $5,
               $6, $5, $6, $5
        WHERE NOT EXISTS (SELECT 1 FROM found)
        ON CONFLICT (charge_point_id, transaction_id) DO NOTHING
        RETURNING s.id, s.transaction_id, {context_sql("s")} AS context
    ), session AS (
        SELECT id, transaction_id, context FROM created
        UNION ALL
        SELECT f.id, f.transaction_id,
               (SELECT {context_sql("ss")} FROM sessions ss WHERE ss.id = f.id)
        FROM found f
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload, context)
        SELECT $10, $11, $1, $3, $3, $5,
               jsonb_set($12::jsonb, '{{transaction_id}}', to_jsonb(session.transaction_id)),
               session.context
        FROM session
    )
    SELECT id, transaction_id FROM session
"""


async def start_v16(conn: Executor, event: SessionStarted, auth_status: str) -> SessionRef:
    """Create a 1.6 session with a CSMS-assigned integer id, or find the one a retry
    repeats, and append the event with that id: one statement (the charger's session
    lock taken before, by :func:`prepare`).

    A StartTransaction that a charger repeats (it got no answer the first time)
    has the same connector, id tag, timestamp and meterStart; it gets the same
    transactionId back instead of a second session. A 1.6 StartTransaction carries
    no samples.
    """
    assert event.transaction_id is None and not event.samples
    while True:
        # A StopTransaction for an id the CSMS never issued is stored under the
        # charger's own id; a sequence value that collides with one writes nothing
        # (no session, no event) and the next value is tried.
        row = await conn.fetchrow(
            _START_V16,
            event.charge_point_id,
            Protocol.V16.value,
            event.connector_id,
            event.id_token,
            event.occurred_at,
            event.meter_start_wh,
            event.token_type,
            auth_status,
            event.reservation_id,
            event.event_id,
            event.type,
            event.payload_json(),
        )
        if row is not None:
            return SessionRef(row["id"], row["transaction_id"])
