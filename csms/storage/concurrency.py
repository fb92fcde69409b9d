"""Is an id token already charging somewhere else? (ConcurrentTx)"""

from __future__ import annotations

from csms.storage import Executor


async def in_another_session(
    conn: Executor, id_token: str, charge_point_id: str, transaction_id: str | None
) -> bool:
    """An active session of this token other than ``transaction_id`` at this charger."""
    found = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM sessions
            WHERE status = 'active' AND lower(id_token) = lower($1)
              AND NOT (charge_point_id = $2 AND transaction_id IS NOT DISTINCT FROM $3)
        )
        """,
        id_token,
        charge_point_id,
        transaction_id,
    )
    return bool(found)
