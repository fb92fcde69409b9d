"""Is an id token already charging somewhere else? (ConcurrentTx)"""

from __future__ import annotations

from csms.storage import Executor


async def in_another_session(
    conn: Executor, id_token: str, charge_point_id: str, transaction_id: str | None, hours: float
) -> bool:
    """An active session of this token other than ``transaction_id`` at this charger.

    Only sessions that moved in the last ``hours`` count: a session whose end was
    never reported must not lock its driver out for ever.
    """
    found = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM sessions
            WHERE status = 'active' AND lower(id_token) = lower($1)
              AND NOT (charge_point_id = $2 AND transaction_id IS NOT DISTINCT FROM $3)
              AND updated_at > now() - make_interval(secs => $4)
        )
        """,
        id_token,
        charge_point_id,
        transaction_id,
        hours * 3600,
    )
    return bool(found)
