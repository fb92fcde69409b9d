"""Charger password rotation: pending, current and previous password hashes.

The CSMS asks the charger to take a new password (1.6 AuthorizationKey, 2.0.1
SecurityCtrlr.BasicAuthPassword) with its hash *pending*; the answer Accepted
makes it current and keeps the old one as *previous*. The charger may connect
with any of the three meanwhile; the first connection with the new password
(current or pending) ends the rotation: pending becomes current if it was not
yet (the answer was lost), and the previous password stops working.
"""

from __future__ import annotations

from csms.storage import Executor


async def set_pending(conn: Executor, charge_point_id: str, password_hash: str) -> bool:
    """Start a rotation; False if the charger has no password to rotate."""
    status = await conn.execute(
        """
        UPDATE chargers SET pending_password_hash = $2, updated_at = now()
        WHERE charge_point_id = $1 AND password_hash IS NOT NULL
        """,
        charge_point_id,
        password_hash,
    )
    return status.endswith(" 1")


async def accepted(conn: Executor, charge_point_id: str, password_hash: str) -> None:
    """The charger accepted the pending password: it becomes current, the old one previous."""
    await conn.execute(
        """
        UPDATE chargers SET previous_password_hash = password_hash, password_hash = $2,
                            pending_password_hash = NULL, password_changed_at = now(),
                            updated_at = now()
        WHERE charge_point_id = $1 AND pending_password_hash = $2
        """,
        charge_point_id,
        password_hash,
    )


async def abandoned(conn: Executor, charge_point_id: str, password_hash: str) -> None:
    """The charger refused the new password: forget it."""
    await conn.execute(
        """
        UPDATE chargers SET pending_password_hash = NULL, updated_at = now()
        WHERE charge_point_id = $1 AND pending_password_hash = $2
        """,
        charge_point_id,
        password_hash,
    )


async def settle(conn: Executor, charge_point_id: str, matched_hash: str) -> None:
    """A charger authenticated with ``matched_hash`` while a rotation was open."""
    await conn.execute(
        """
        UPDATE chargers SET
            previous_password_hash = CASE
                WHEN pending_password_hash = $2 OR password_hash = $2 THEN NULL
                ELSE previous_password_hash END,
            password_hash = CASE WHEN pending_password_hash = $2 THEN $2 ELSE password_hash END,
            password_changed_at = CASE WHEN pending_password_hash = $2 THEN now()
                                       ELSE password_changed_at END,
            pending_password_hash = CASE WHEN pending_password_hash = $2 THEN NULL
                                         ELSE pending_password_hash END,
            updated_at = now()
        WHERE charge_point_id = $1
        """,
        charge_point_id,
        matched_hash,
    )
