"""Display messages a charger shows (2.0.1 O01-O06), as far as the CSMS knows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from csms.storage import Executor


async def upsert(
    conn: Executor,
    charge_point_id: str,
    messages: Iterable[dict[str, Any]],
    source: str,
    at: datetime,
) -> None:
    """MessageInfoType dicts (snake_case), from SetDisplayMessage or NotifyDisplayMessages."""
    rows = [
        (
            charge_point_id,
            int(m["id"]),
            str(m["priority"]),
            m.get("state"),
            str((m.get("message") or {}).get("content", "")),
            json.dumps(m, default=str),
            source,
            at,
        )
        for m in messages
    ]
    if rows:
        await conn.executemany(
            """
            INSERT INTO display_messages (charge_point_id, message_id, priority, state, content,
                                          message, source, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
            ON CONFLICT (charge_point_id, message_id) DO UPDATE SET
                priority = EXCLUDED.priority, state = EXCLUDED.state,
                content = EXCLUDED.content, message = EXCLUDED.message,
                source = EXCLUDED.source, updated_at = EXCLUDED.updated_at
            """,
            rows,
        )


async def remove(conn: Executor, charge_point_id: str, message_id: int) -> None:
    await conn.execute(
        "DELETE FROM display_messages WHERE charge_point_id = $1 AND message_id = $2",
        charge_point_id,
        message_id,
    )


async def of_charger(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT message_id, priority, state, content, message, source, updated_at
        FROM display_messages WHERE charge_point_id = $1 ORDER BY message_id
        """,
        charge_point_id,
    )
    return [dict(r) | {"message": json.loads(r["message"])} for r in rows]
