"""Report parts chargers send (display messages, customer information, charging
profiles, monitoring reports, EV charging schedules, firmware publication), as reported."""

from __future__ import annotations

import json
from typing import Any

from csms.events import ChargerReportReceived
from csms.storage import Executor


async def insert(conn: Executor, event: ChargerReportReceived) -> None:
    await conn.execute(
        """
        INSERT INTO charger_reports (charge_point_id, action, request_id, seq_no, tbc, evse_id,
                                     data, occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
        """,
        event.charge_point_id,
        event.action,
        event.request_id,
        event.seq_no,
        event.tbc,
        event.evse_id,
        json.dumps(event.data, default=str),
        event.occurred_at,
    )


async def find(
    conn: Executor,
    charge_point_id: str,
    action: str | None = None,
    request_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; parts of one request come back in seqNo order within it."""
    rows = await conn.fetch(
        """
        SELECT id, action, request_id, seq_no, tbc, evse_id, data, occurred_at, received_at
        FROM charger_reports
        WHERE charge_point_id = $1 AND ($2::text IS NULL OR action = $2)
          AND ($3::int IS NULL OR request_id = $3)
        ORDER BY id DESC LIMIT $4
        """,
        charge_point_id,
        action,
        request_id,
        limit,
    )
    parts = [dict(r) | {"data": json.loads(r["data"])} for r in rows]
    if request_id is not None:
        parts.sort(key=lambda p: (p["seq_no"] is None, p["seq_no"] or 0, p["id"]))
    return parts
