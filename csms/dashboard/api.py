"""JSON the dashboard reads beyond the operator API: who am I, the overview, activity, curves.

Everything here is read-only (``Reader``): a read-only key sees every page; the
commands it may not send are the operator API's own routes, which answer 403.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from csms.api.context import Context, Reader
from csms.dashboard import queries

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"])

ConnectorStatus = Literal["Available", "Occupied", "Reserved", "Unavailable", "Faulted"]


@router.get("/me")
async def me(caller: Reader) -> dict[str, Any]:
    """The caller's key name and role; the page hides command buttons from read-only keys."""
    return {"name": caller.name, "role": caller.role, "can_command": caller.role == "operator"}


@router.get("/overview")
async def overview(
    context: Context,
    caller: Reader,
    q: Annotated[str | None, Query(description="part of id, vendor or model")] = None,
    connected: bool | None = None,
    protocol: Literal["ocpp1.6", "ocpp2.0.1"] | None = None,
    connector_status: ConnectorStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Fleet counts and one page of chargers matching the filter (with the match count)."""
    async with context.pool.acquire() as conn:
        counts = await queries.fleet_counts(conn)
        total, items = await queries.charger_page(
            conn,
            connected=connected,
            search=q,
            protocol=protocol,
            connector_status=connector_status,
            limit=limit,
            offset=offset,
        )
    return {"counts": counts, "total": total, "limit": limit, "offset": offset, "items": items}


@router.get("/sites/{site_id}/history")
async def site_history(
    site_id: str,
    context: Context,
    caller: Reader,
    hours: Annotated[float, Query(gt=0, le=168, description="window ending now")] = 24,
    points: Annotated[int, Query(ge=10, le=2000, description="time buckets at most")] = 720,
    profiles: Annotated[int, Query(ge=0, le=5000, description="profiles listed at most")] = 1000,
) -> dict[str, Any]:
    """A site's load over the window, from stored plans: limit in force, allocated and
    measured A per line; and every profile the load manager sent for it, newest first.

    Read from the event log (smart charging's ``load_plan_computed`` and
    ``charging_limit_set`` events), so it is there on any node and after a restart;
    the window is bounded by the outbox retention (``CSMS_OUTBOX_RETENTION_HOURS``).
    """
    end = datetime.now(UTC)
    start = end - timedelta(hours=hours)
    bucket_s = max(1, math.ceil(hours * 3600 / points))
    async with context.pool.acquire() as conn:
        series = await queries.site_load_history(conn, site_id, start, end, bucket_s)
        total, sent = await queries.site_profiles_sent(conn, site_id, start, end, profiles)
    return {
        "site_id": site_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "bucket_s": bucket_s,
        "points": series,
        "profiles_total": total,
        "profiles": sent,
    }


@router.get("/chargers/{charge_point_id}/activity")
async def activity(
    charge_point_id: str,
    context: Context,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 30,
) -> dict[str, Any]:
    """The charger's recent messages (as events) and the operator commands sent to it."""
    async with context.pool.acquire() as conn:
        events = await queries.recent_events(conn, charge_point_id, limit)
        commands = await queries.recent_commands(conn, charge_point_id, limit)
    return {"events": events, "commands": commands}


def curve(
    readings: Iterable[tuple[datetime, str, float]], start_wh: float | None = None
) -> dict[str, list[float | None]]:
    """Aligned series for a chart: seconds since epoch, energy delivered (kWh), power (kW).

    Energy is the register minus the session's start reading (``start_wh``, or
    the first register reading when the start is unknown). Power is the
    charger's own reading where it sends one, else the register's slope since
    the previous reading (a charger that only sends the register still gets a
    power curve).
    """
    points: dict[datetime, dict[str, float]] = {}
    for at, measurand, value in readings:
        points.setdefault(at, {})[measurand] = value
    times: list[float | None] = []
    energy: list[float | None] = []
    power: list[float | None] = []
    has_power = any(queries.POWER in p for p in points.values())
    first_wh = start_wh
    previous: tuple[datetime, float] | None = None
    for at in sorted(points):
        reading = points[at]
        wh = reading.get(queries.REGISTER)
        kwh: float | None = None
        if wh is not None:
            first_wh = wh if first_wh is None else first_wh
            kwh = (wh - first_wh) / 1000
        kw: float | None = None
        if has_power:
            watts = reading.get(queries.POWER)
            kw = None if watts is None else watts / 1000
        elif wh is not None and previous is not None:
            hours = (at - previous[0]).total_seconds() / 3600
            kw = (wh - previous[1]) / 1000 / hours if hours > 0 else None
        if wh is not None:
            previous = (at, wh)
        times.append(at.timestamp())
        energy.append(kwh)
        power.append(kw)
    return {"t": times, "energy_kwh": energy, "power_kw": power}


@router.get("/sessions/{session_id}/curve")
async def session_curve(session_id: int, context: Context, caller: Reader) -> dict[str, Any]:
    """The session's energy and power over time, for the live chart."""
    async with context.pool.acquire() as conn:
        session = await conn.fetchrow(
            "SELECT meter_start_wh FROM sessions WHERE id = $1", session_id
        )
        if session is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"session {session_id} not found")
        readings = await queries.session_readings(conn, session_id, None)
    return {"session_id": session_id, **curve(readings, session["meter_start_wh"])}
