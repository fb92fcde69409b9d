"""A charger's move to a higher security profile: pending until it connects meeting it."""

from __future__ import annotations

from csms.storage import Executor


async def set_pending(conn: Executor, charge_point_id: str, profile: int) -> None:
    await conn.execute(
        "UPDATE chargers SET pending_security_profile = $2, updated_at = now() "
        "WHERE charge_point_id = $1",
        charge_point_id,
        profile,
    )


async def reached(conn: Executor, charge_point_id: str, profile: int) -> None:
    """The charger connected meeting ``profile``: from now on nothing less is accepted."""
    await conn.execute(
        """
        UPDATE chargers SET security_profile = GREATEST(security_profile, $2),
                            pending_security_profile = NULL, updated_at = now()
        WHERE charge_point_id = $1 AND pending_security_profile = $2
        """,
        charge_point_id,
        profile,
    )
