"""The append-only event log and the meter-sample table.

Every internal event is appended to ``events`` in the same transaction as the
state change it describes, so the log and the projections never disagree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from csms.events import Event, MeterSample, MeterSampled
from csms.meter import energy_register
from csms.storage import Executor
from csms.storage.sessions import readings_assignment


async def append(conn: Executor, event: Event, session_id: int | None = None) -> None:
    """Append ``event``; with ``session_id``, snapshot that session row into ``context``.

    The snapshot is taken in the same statement (and transaction) as the event,
    so the Kafka fan-out (:mod:`csms.outbox`) publishes the session exactly as
    this state change left it, whatever happens to the row later.
    """
    evse_id, connector_id = event.evse
    await conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload, context)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
                (SELECT to_jsonb(s) - 'created_at' - 'updated_at'
                 FROM sessions s WHERE s.id = $8::bigint))
        """,
        event.event_id,
        event.type,
        event.charge_point_id,
        evse_id,
        connector_id,
        event.occurred_at,
        json.dumps(event.payload(), separators=(",", ":")),
        session_id,
    )


EVENT_ID_CONSTRAINT = "events_event_id_key"


async def exists(conn: Executor, event_id: uuid.UUID) -> bool:
    """Whether an event with this id is stored: its message is a resend (csms.dedupe)."""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)", event_id)
    )


async def stored_payload(conn: Executor, event_id: uuid.UUID) -> dict[str, Any] | None:
    """The payload of a stored event (what the first copy of a resent message recorded)."""
    raw = await conn.fetchval("SELECT payload FROM events WHERE event_id = $1", event_id)
    return None if raw is None else dict(json.loads(raw))


_SAMPLES_FROM_ARRAYS = """
    unnest({0}::timestamptz[], {1}::text[], {2}::text[], {3}::text[], {4}::text[],
           {5}::float8[], {6}::text[])
    AS x(sampled_at, measurand, phase, location, context, value, unit)
"""


def _sample_arrays(samples: Sequence[MeterSample]) -> list[list[Any]]:
    return [
        [s.sampled_at for s in samples],
        [s.measurand for s in samples],
        [s.phase for s in samples],
        [s.location for s in samples],
        [s.context for s in samples],
        [s.value for s in samples],
        [s.unit for s in samples],
    ]


async def insert_samples(
    conn: Executor,
    charge_point_id: str,
    session_id: int | None,
    evse_id: int | None,
    connector_id: int | None,
    samples: Sequence[MeterSample],
) -> None:
    """Write all samples of one message in a single statement (one round trip)."""
    if not samples:
        return
    await conn.execute(
        f"""
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT $1, $2, $3, $4, x.sampled_at, x.measurand, x.phase, x.location, x.context,
               x.value, x.unit
        FROM {_SAMPLES_FROM_ARRAYS.format(*(f"${i}" for i in range(5, 12)))}
        """,
        charge_point_id,
        session_id,
        evse_id,
        connector_id,
        *_sample_arrays(samples),
    )


_READINGS = readings_assignment("$12", "$13::timestamptz", "$14", "$15::timestamptz")
_RECORD_METER_SAMPLED = f"""
    WITH seen AS (
        SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $16) AS duplicate
    ), session AS (
        SELECT id FROM sessions WHERE charge_point_id = $1 AND transaction_id = $2
    ), samples AS (
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT $1, (SELECT id FROM session), $3, $4, x.sampled_at, x.measurand, x.phase,
               x.location, x.context, x.value, x.unit
        FROM {_SAMPLES_FROM_ARRAYS.format(*(f"${i}" for i in range(5, 12)))}
        WHERE NOT (SELECT duplicate FROM seen)
    ), readings AS (
        UPDATE sessions SET {_READINGS}
        WHERE id = (SELECT id FROM session) AND $13::timestamptz IS NOT NULL
          AND NOT (SELECT duplicate FROM seen)
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT $16, $17, $1, $3, $4, $18, $19::jsonb WHERE NOT (SELECT duplicate FROM seen)
    )
    SELECT (SELECT id FROM session) AS session_id, (SELECT duplicate FROM seen) AS duplicate
"""


async def record_meter_sampled(conn: Executor, event: MeterSampled) -> tuple[int | None, bool]:
    """Store a MeterSampled event, its samples and its session's readings in ONE statement.

    Meter values are most of what chargers send; one statement (atomic on its
    own, no BEGIN/COMMIT) instead of five keeps their database round trips at
    one. Returns the id of the session the samples belong to, if it is known,
    and whether the event was already stored (a resend: nothing is written).
    """
    register = energy_register(event.samples)
    first = register[0] if register else None
    last = register[-1] if register else None
    row = await conn.fetchrow(
        _RECORD_METER_SAMPLED,
        event.charge_point_id,
        event.transaction_id,
        event.evse_id,
        event.connector_id,
        *_sample_arrays(event.samples),
        first.value if first else None,
        first.sampled_at if first else None,
        last.value if last else None,
        last.sampled_at if last else None,
        event.event_id,
        event.type,
        event.occurred_at,
        json.dumps(event.payload(), separators=(",", ":")),
    )
    assert row is not None
    session_id = row["session_id"]
    return (None if session_id is None else int(session_id)), bool(row["duplicate"])


_READINGS_FROM_BATCH = readings_assignment("m.first_wh", "m.first_at", "m.last_wh", "m.last_at")
_RECORD_METER_SAMPLED_MANY = f"""
    WITH ev AS (
        SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[], $5::int[],
                             $6::int[], $7::timestamptz[], $8::text[], $9::float8[],
                             $10::timestamptz[], $11::float8[], $12::timestamptz[])
        AS e(i, event_id, charge_point_id, transaction_id, evse_id, connector_id,
             occurred_at, payload, first_wh, first_at, last_wh, last_at)
    ), marked AS (
        SELECT ev.*, s.id AS session_id,
               EXISTS (SELECT 1 FROM events x WHERE x.event_id = ev.event_id) AS duplicate
        FROM ev LEFT JOIN sessions s
          ON s.charge_point_id = ev.charge_point_id AND s.transaction_id = ev.transaction_id
    ), samples AS (
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT m.charge_point_id, m.session_id, m.evse_id, m.connector_id, x.sampled_at,
               x.measurand, x.phase, x.location, x.context, x.value, x.unit
        FROM unnest($13::int[], $14::timestamptz[], $15::text[], $16::text[], $17::text[],
                    $18::text[], $19::float8[], $20::text[])
             AS x(i, sampled_at, measurand, phase, location, context, value, unit)
        JOIN marked m ON m.i = x.i
        WHERE NOT m.duplicate
    ), readings AS (
        UPDATE sessions SET {_READINGS_FROM_BATCH}
        FROM marked m
        WHERE sessions.id = m.session_id AND m.first_at IS NOT NULL AND NOT m.duplicate
    ), event AS (
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT m.event_id, $21, m.charge_point_id, m.evse_id, m.connector_id, m.occurred_at,
               m.payload::jsonb
        FROM marked m WHERE NOT m.duplicate ORDER BY m.i
    )
    SELECT i, session_id, duplicate FROM marked ORDER BY i
"""


async def record_meter_sampled_many(
    conn: Executor, events: Sequence[MeterSampled]
) -> list[tuple[int | None, bool]]:
    """:func:`record_meter_sampled` for many events in ONE statement (group commit).

    The events must be of different chargers (one per session: a session's
    readings are moved once per statement). Returns, per event in order, the
    id of its session if known and whether it was already stored.
    """
    columns: list[list[Any]] = [[] for _ in range(12)]
    sample_columns: list[list[Any]] = [[] for _ in range(8)]
    for index, event in enumerate(events):
        register = energy_register(event.samples)
        first = register[0] if register else None
        last = register[-1] if register else None
        values = (
            index,
            event.event_id,
            event.charge_point_id,
            event.transaction_id,
            event.evse_id,
            event.connector_id,
            event.occurred_at,
            json.dumps(event.payload(), separators=(",", ":")),
            first.value if first else None,
            first.sampled_at if first else None,
            last.value if last else None,
            last.sampled_at if last else None,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
        for s in event.samples:
            sample = (index, s.sampled_at, s.measurand, s.phase, s.location, s.context)
            for column, value in zip(sample_columns, (*sample, s.value, s.unit), strict=True):
                column.append(value)
    rows = await conn.fetch(
        _RECORD_METER_SAMPLED_MANY, *columns, *sample_columns, MeterSampled.type
    )
    results: list[tuple[int | None, bool]] = []
    for row in rows:
        session_id = row["session_id"]
        results.append(((None if session_id is None else int(session_id)), bool(row["duplicate"])))
    return results


class MeterSampledWriter:
    """The bulk writer of MeterSampled events for :mod:`csms.storage.group_commit`."""

    name = "meter_sampled"

    async def __call__(self, conn: Executor, items: Sequence[Any]) -> list[tuple[int | None, bool]]:
        return await record_meter_sampled_many(conn, items)


METER_SAMPLED_WRITER = MeterSampledWriter()
