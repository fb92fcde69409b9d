"""The append-only event log and the meter-sample table.

Every internal event is appended to ``events`` in the same transaction as the
state change it describes, so the log and the projections never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from csms.events import Event, MeterSample, MeterSampled
from csms.meter import energy_register
from csms.storage import Executor
from csms.storage.sessions import context_sql, readings_assignment

_APPEND = f"""
    INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                        occurred_at, payload, context)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
            (SELECT {context_sql("s")} FROM sessions s WHERE s.id = $8::bigint))
"""


async def append(conn: Executor, event: Event, session_id: int | None = None) -> None:
    """Append ``event``; with ``session_id``, snapshot that session into ``context``.

    The snapshot is taken in the same statement (and transaction) as the event,
    so the Kafka fan-out (:mod:`csms.outbox`) publishes the session exactly as
    this state change left it, whatever happens to the row later.
    """
    evse_id, connector_id = event.evse
    await conn.execute(
        _APPEND,
        event.event_id,
        event.type,
        event.charge_point_id,
        evse_id,
        connector_id,
        event.occurred_at,
        event.payload_json(),
        session_id,
    )


async def append_many(conn: Executor, events: Sequence[Event]) -> None:
    """Append ``events`` in one statement, in their order (no session snapshot): a batch
    costs one round trip, not one per event."""
    if not events:
        return
    columns: list[list[Any]] = [[] for _ in range(7)]
    for event in events:
        evse_id, connector_id = event.evse
        row = (event.event_id, event.type, event.charge_point_id, evse_id, connector_id,
               event.occurred_at, event.payload_json())  # fmt: skip
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT e.event_id, e.type, e.cp, e.evse_id, e.connector_id, e.occurred_at, e.payload
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[],
                    $6::timestamptz[], $7::jsonb[])
             WITH ORDINALITY AS e(event_id, type, cp, evse_id, connector_id, occurred_at,
                                  payload, n)
        ORDER BY e.n
        """,
        *columns,
    )


EVENT_ID_CONSTRAINT = "events_event_id_key"

# How a multi-row statement of group commit tells a resend from a new message: its
# events are inserted first, ``ON CONFLICT (event_id) DO NOTHING``, and a row whose
# event did not come back from that insert is a resend; the statement's other writes
# skip it. (A segment holds at most one message per charger, so no id comes twice.)
# The check goes through ``events``' unique index whatever the plan. It was a per-row
# ``EXISTS (SELECT 1 FROM events ...)``, for which Postgres may pick a *hashed*
# subplan, a sequential scan of the whole table per statement: a prepared statement
# keeps a generic plan made while ``events`` was small (a fresh database, before its
# first ANALYZE), so as the table grew every status or meter batch read all of it
# (34,000 rows, 17-50 ms of Postgres per statement, in bench.ingest's half-rate window
# after a saturated one). ``NEW_EVENTS_ONLY`` ends the INSERT of a CTE named
# ``event`` that the rows are then left-joined to by event id.
NEW_EVENTS_ONLY = "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
RESEND = "event.event_id IS NULL"


async def exists(conn: Executor, event_id: uuid.UUID) -> bool:
    """Whether an event with this id is stored: its message is a resend (csms.dedupe)."""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)", event_id)
    )


SAMPLES_FROM_ARRAYS = """
    unnest({0}::timestamptz[], {1}::text[], {2}::text[], {3}::text[], {4}::text[],
           {5}::float8[], {6}::text[])
    AS x(sampled_at, measurand, phase, location, context, value, unit)
"""


def sample_arrays(samples: Sequence[MeterSample]) -> list[list[Any]]:
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
        FROM {SAMPLES_FROM_ARRAYS.format(*(f"${i}" for i in range(5, 12)))}
        """,
        charge_point_id,
        session_id,
        evse_id,
        connector_id,
        *sample_arrays(samples),
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
        FROM {SAMPLES_FROM_ARRAYS.format(*(f"${i}" for i in range(5, 12)))}
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
        *sample_arrays(event.samples),
        first.value if first else None,
        first.sampled_at if first else None,
        last.value if last else None,
        last.sampled_at if last else None,
        event.event_id,
        event.type,
        event.occurred_at,
        event.payload_json(),
    )
    assert row is not None
    session_id = row["session_id"]
    return (None if session_id is None else int(session_id)), bool(row["duplicate"])
