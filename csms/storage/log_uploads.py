"""Log uploads to the CSMS's built-in receiver: who asked, the token's hash, the file."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from csms.storage import Executor


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    conn: Executor,
    charge_point_id: str,
    token: str,
    message: str,
    log_type: str,
    request_id: int,
    requested_by: str,
    expires_at: datetime,
) -> int:
    upload_id = await conn.fetchval(
        """
        INSERT INTO log_uploads (charge_point_id, token_sha256, message, log_type, request_id,
                                 requested_by, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        charge_point_id,
        token_hash(token),
        message,
        log_type,
        request_id,
        requested_by,
        expires_at,
    )
    return int(upload_id)


async def by_token(conn: Executor, token: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM log_uploads WHERE token_sha256 = $1", token_hash(token)
    )
    return None if row is None else dict(row)


async def received(
    conn: Executor, upload_id: int, file_name: str, file_path: str, size_bytes: int
) -> None:
    await conn.execute(
        """
        UPDATE log_uploads SET file_name = $2, file_path = $3, size_bytes = $4, received_at = now()
        WHERE id = $1
        """,
        upload_id,
        file_name,
        file_path,
        size_bytes,
    )


async def of_charger(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    """Uploads newest first, each with the last status the charger reported for it."""
    rows = await conn.fetch(
        """
        SELECT u.id, u.message, u.log_type, u.request_id, u.requested_by, u.requested_at,
               u.expires_at, u.file_name, u.size_bytes, u.received_at,
               (SELECT e.payload->>'status' FROM events e
                WHERE e.charge_point_id = u.charge_point_id AND e.type = 'upload_status_changed'
                  AND e.recorded_at >= u.requested_at
                  AND ((e.payload->>'request_id')::int = u.request_id
                       -- 1.6 DiagnosticsStatusNotification names no request
                       OR (u.message = 'GetDiagnostics' AND e.payload->>'kind' = 'diagnostics'))
                ORDER BY e.id DESC LIMIT 1) AS status
        FROM log_uploads u WHERE u.charge_point_id = $1 ORDER BY u.id DESC
        """,
        charge_point_id,
    )
    return [dict(r) for r in rows]


async def find(conn: Executor, charge_point_id: str, upload_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM log_uploads WHERE charge_point_id = $1 AND id = $2",
        charge_point_id,
        upload_id,
    )
    return None if row is None else dict(row)
