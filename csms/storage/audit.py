"""The audit trail of operator commands: who asked what of which charger, and the answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

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


async def record_intent(
    conn: Executor,
    *,
    api_key_id: int | None,
    actor: str,
    charge_point_id: str,
    command: str,
    request: dict[str, Any],
    requested_at: datetime,
) -> int:
    """The audit row of a command about to be sent (outcome 'pending'), before it goes out."""
    audit_id = await conn.fetchval(
        """
        INSERT INTO command_audit (api_key_id, actor, charge_point_id, command, request,
                                   outcome, requested_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', $6)
        RETURNING id
        """,
        api_key_id,
        actor,
        charge_point_id,
        command,
        json.dumps(request, default=str),
        requested_at,
    )
    return int(audit_id)


async def complete(
    conn: Executor,
    audit_id: int,
    *,
    protocol: str | None,
    outcome: str,
    response: dict[str, Any] | None,
    error: str | None,
    raw_answer: str | None,
    duration_ms: float,
) -> None:
    """Fill in a command's outcome; an answer no jsonb can hold is kept as raw text only."""
    values = (protocol, outcome, error, raw_answer, duration_ms)
    try:
        await conn.execute(_COMPLETE, audit_id, _json_or_none(response), *values)
    except asyncpg.DataError:
        await conn.execute(_COMPLETE, audit_id, None, *values)


_COMPLETE = """
    UPDATE command_audit
    SET response = $2::jsonb, protocol = $3, outcome = $4, error = $5, raw_answer = $6,
        duration_ms = $7
    WHERE id = $1
"""


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return None


async def next_request_id(conn: Executor) -> int:
    return int(await conn.fetchval("SELECT nextval('command_request_id_seq')"))
