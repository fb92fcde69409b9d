"""The audit trail of operator commands: who asked what of which charger, and the answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.storage import Executor


async def record_command(
    conn: Executor,
    *,
    api_key_id: int | None,
    actor: str,
    charge_point_id: str,
    command: str,
    protocol: str | None,
    request: dict[str, Any],
    outcome: str,
    response: dict[str, Any] | None,
    error: str | None,
    requested_at: datetime,
    duration_ms: float,
) -> int:
    audit_id = await conn.fetchval(
        """
        INSERT INTO command_audit (api_key_id, actor, charge_point_id, command, protocol,
                                   request, outcome, response, error, requested_at, duration_ms)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10, $11)
        RETURNING id
        """,
        api_key_id,
        actor,
        charge_point_id,
        command,
        protocol,
        json.dumps(request, default=str),
        outcome,
        None if response is None else json.dumps(response, default=str),
        error,
        requested_at,
        duration_ms,
    )
    return int(audit_id)


async def next_request_id(conn: Executor) -> int:
    return int(await conn.fetchval("SELECT nextval('command_request_id_seq')"))
