"""Is an id token already charging somewhere else? (ConcurrentTx)"""

from __future__ import annotations

from csms.storage import Executor


async def in_another_session(
    conn: Executor,
    id_token: str,
    charge_point_id: str,
    transaction_id: str | None,
    connector_id: int | None,
    hours: float,
) -> bool:
    """An active session of this token elsewhere than this one.

    This one: at this charger, the same transaction or the same connector (a 1.6
    StartTransaction resent has no transaction id yet). An Authorize knows neither,
    so every active session counts: a charger stopping with the starting tag does
    not ask (1.6 and 2.0.1 both let it compare the tags itself).
    Only sessions that moved in the last ``hours`` count: a session whose end was
    never reported must not lock its driver out for ever.
    """
    found = await conn.fetchval(
        """
        SELECT EXISTS (
            SELECT 1 FROM sessions
            WHERE status = 'active' AND lower(id_token) = lower($1)
              AND NOT (charge_point_id = $2
                       AND ((transaction_id = $3) IS TRUE OR (connector_id = $4) IS TRUE))
              AND updated_at > now() - make_interval(secs => $5)
        )
        """,
        id_token,
        charge_point_id,
        transaction_id,
        connector_id,
        hours * 3600,
    )
    return bool(found)
