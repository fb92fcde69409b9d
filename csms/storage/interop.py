"""What the CSMS learned about each charger's OCPP support (see migration 0014).

Two facts per charger: the actions it does not take (``charger_unsupported_actions``)
and the charging-rate units it accepts (``charger_rate_units``). Both live in
Postgres, so every node -- and the next process after a restart -- knows them.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from csms.storage import Executor

CALL_ERROR = "call_error"
DEVICE_MODEL = "device_model"


async def record_unsupported(
    conn: Executor, charge_point_id: str, action: str, source: str, detail: str
) -> bool:
    """Note that the charger does not take ``action``; True if it was not known before.

    A CALLERROR wins over the device model (what the charger did over what it said).
    """
    row = await conn.fetchrow(
        """
        INSERT INTO charger_unsupported_actions
            (charge_point_id, action, source, detail, firmware_version)
        SELECT c.charge_point_id, $2, $3, $4, c.firmware_version
        FROM chargers c WHERE c.charge_point_id = $1
        ON CONFLICT (charge_point_id, action) DO UPDATE
            SET source = EXCLUDED.source, detail = EXCLUDED.detail,
                firmware_version = EXCLUDED.firmware_version, learned_at = now()
            WHERE charger_unsupported_actions.source <> 'call_error'
               OR EXCLUDED.source = 'call_error'
        RETURNING (xmax = 0) AS inserted
        """,
        charge_point_id,
        action,
        source,
        detail,
    )
    return bool(row and row["inserted"])


async def forget_unsupported(
    conn: Executor, charge_point_id: str, action: str, sources: Collection[str] | None = None
) -> bool:
    """Give the charger another chance at ``action`` (only what ``sources`` said, if given)."""
    status = await conn.execute(
        """
        DELETE FROM charger_unsupported_actions
        WHERE charge_point_id = $1 AND action = $2
          AND ($3::text[] IS NULL OR source = ANY($3::text[]))
        """,
        charge_point_id,
        action,
        None if sources is None else list(sources),
    )
    return status != "DELETE 0"


async def forget_other_firmware(
    conn: Executor, charge_point_id: str, firmware_version: str | None
) -> int:
    """Drop what was learned under other firmware than ``firmware_version`` (a new boot)."""
    status = await conn.execute(
        """
        DELETE FROM charger_unsupported_actions
        WHERE charge_point_id = $1 AND firmware_version IS DISTINCT FROM $2
        """,
        charge_point_id,
        firmware_version,
    )
    return int(status.split()[-1])


async def unsupported_actions(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT action, source, detail, firmware_version, learned_at
        FROM charger_unsupported_actions WHERE charge_point_id = $1 ORDER BY action
        """,
        charge_point_id,
    )
    return [dict(r) for r in rows]


async def set_rate_units(
    conn: Executor, charge_point_id: str, units: Collection[str], source: str
) -> None:
    await conn.execute(
        """
        INSERT INTO charger_rate_units (charge_point_id, units, source)
        SELECT charge_point_id, $2, $3 FROM chargers WHERE charge_point_id = $1
        ON CONFLICT (charge_point_id) DO UPDATE
            SET units = EXCLUDED.units, source = EXCLUDED.source, learned_at = now()
        """,
        charge_point_id,
        sorted(units),
        source,
    )


async def rate_units(conn: Executor, charge_point_id: str) -> frozenset[str] | None:
    """The units the charger accepts in a schedule; None when not known."""
    units = await conn.fetchval(
        "SELECT units FROM charger_rate_units WHERE charge_point_id = $1", charge_point_id
    )
    return frozenset(units) if units else None


async def booted_but_unknown(conn: Executor, charge_point_id: str) -> bool:
    """The charger has booted before, but its rate units were never learned."""
    return bool(
        await conn.fetchval(
            """
            SELECT c.last_boot_at IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM charger_rate_units u WHERE u.charge_point_id = c.charge_point_id)
            FROM chargers c WHERE c.charge_point_id = $1
            """,
            charge_point_id,
        )
    )


async def describe(conn: Executor, charge_point_id: str) -> dict[str, Any]:
    """The charger's interop facts for the API: ``unsupported_actions``, ``rate_units``."""
    units = await conn.fetchrow(
        "SELECT units, source, learned_at FROM charger_rate_units WHERE charge_point_id = $1",
        charge_point_id,
    )
    learned: datetime | None = units["learned_at"] if units else None
    return {
        "unsupported_actions": await unsupported_actions(conn, charge_point_id),
        "charging_rate_units": (
            {"units": list(units["units"]), "source": units["source"], "learned_at": learned}
            if units
            else None
        ),
    }
