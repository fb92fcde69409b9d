"""Smart-charging inputs chargers report: ISO 15118 charging needs and external limits.

The planner (smart_charging/) reads :func:`latest_charging_needs`: an EV's
departure time and the energy it asked for, as NotifyEVChargingNeeds said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.events import EvChargingNeedsReported, ExternalLimitChanged
from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What an EV at an EVSE asked for (the latest NotifyEVChargingNeeds)."""

    charge_point_id: str
    evse_id: int
    requested_energy_transfer: str  # AC_single_phase, AC_three_phase, DC, ...
    departure_time: datetime | None
    energy_amount_wh: float | None
    max_schedule_tuples: int | None
    reported_at: datetime
    needs: dict[str, Any]  # the whole chargingNeeds (snake_case), incl. AC/DC parameters


async def record_needs(conn: Executor, event: EvChargingNeedsReported) -> None:
    await conn.execute(
        """
        INSERT INTO ev_charging_needs (charge_point_id, evse_id, requested_energy_transfer,
                                       departure_time, energy_amount_wh, max_schedule_tuples,
                                       needs, reported_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
        ON CONFLICT (charge_point_id, evse_id) DO UPDATE SET
            requested_energy_transfer = EXCLUDED.requested_energy_transfer,
            departure_time = EXCLUDED.departure_time,
            energy_amount_wh = EXCLUDED.energy_amount_wh,
            max_schedule_tuples = EXCLUDED.max_schedule_tuples,
            needs = EXCLUDED.needs, reported_at = EXCLUDED.reported_at
        """,
        event.charge_point_id,
        event.evse_id,
        event.requested_energy_transfer,
        event.departure_time,
        event.energy_amount_wh,
        event.max_schedule_tuples,
        json.dumps(event.needs, default=str),
        event.occurred_at,
    )


async def latest_charging_needs(
    conn: Executor, charge_point_id: str, evse_id: int | None = None
) -> list[ChargingNeeds]:
    """The latest needs per EVSE of a charger (one EVSE if ``evse_id`` is given)."""
    rows = await conn.fetch(
        """
        SELECT * FROM ev_charging_needs
        WHERE charge_point_id = $1 AND ($2::int IS NULL OR evse_id = $2) ORDER BY evse_id
        """,
        charge_point_id,
        evse_id,
    )
    return [
        ChargingNeeds(
            charge_point_id=r["charge_point_id"],
            evse_id=r["evse_id"],
            requested_energy_transfer=r["requested_energy_transfer"],
            departure_time=r["departure_time"],
            energy_amount_wh=r["energy_amount_wh"],
            max_schedule_tuples=r["max_schedule_tuples"],
            reported_at=r["reported_at"],
            needs=json.loads(r["needs"]),
        )
        for r in rows
    ]


async def record_external_limit(conn: Executor, event: ExternalLimitChanged) -> None:
    """NotifyChargingLimit stores the limit; ClearedChargingLimit removes it.

    A clear without an EVSE clears that source's limits on the whole charger.
    """
    if event.cleared:
        await conn.execute(
            """
            DELETE FROM external_charging_limits
            WHERE charge_point_id = $1 AND source = $2 AND ($3::int IS NULL OR evse_id = $3)
            """,
            event.charge_point_id,
            event.source,
            event.evse_id,
        )
        return
    await conn.execute(
        """
        INSERT INTO external_charging_limits (charge_point_id, evse_id, source, grid_critical,
                                              schedules, reported_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6)
        ON CONFLICT (charge_point_id, evse_id, source) DO UPDATE SET
            grid_critical = EXCLUDED.grid_critical, schedules = EXCLUDED.schedules,
            reported_at = EXCLUDED.reported_at
        """,
        event.charge_point_id,
        event.evse_id or 0,
        event.source,
        event.grid_critical,
        json.dumps(list(event.schedules), default=str),
        event.occurred_at,
    )


async def external_limits(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT evse_id, source, grid_critical, schedules, reported_at
        FROM external_charging_limits WHERE charge_point_id = $1 ORDER BY evse_id, source
        """,
        charge_point_id,
    )
    return [dict(r) | {"schedules": json.loads(r["schedules"])} for r in rows]
