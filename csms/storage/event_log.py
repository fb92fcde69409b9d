"""The append-only event log and the meter-sample table.

Every internal event is appended to ``events`` in the same transaction as the
state change it describes, so the log and the projections never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from csms.events import Event, MeterSample
from csms.storage import Executor


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
        """
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, phase, location, context, value, unit)
        SELECT $1, $2, $3, $4, s.sampled_at, s.measurand, s.phase, s.location, s.context,
               s.value, s.unit
        FROM unnest($5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[],
                    $10::float8[], $11::text[])
             AS s(sampled_at, measurand, phase, location, context, value, unit)
        """,
        charge_point_id,
        session_id,
        evse_id,
        connector_id,
        [s.sampled_at for s in samples],
        [s.measurand for s in samples],
        [s.phase for s in samples],
        [s.location for s in samples],
        [s.context for s in samples],
        [s.value for s in samples],
        [s.unit for s in samples],
    )
