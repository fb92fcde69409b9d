"""What chargers reported beyond sessions and status: read-only routes (reader role).

Device model (components/variables from NotifyReport and GetVariables /
SetVariables answers), variable monitors, stored report parts, security
events, ISO 15118 charging needs and external limits, and the certificates
the CSMS's CA issued (plus the CA certificate chargers must trust).
"""

# No `from __future__ import annotations`: FastAPI reads the route's types at runtime.

import json
from typing import Any

from fastapi import APIRouter, Query

from csms.api.context import Context, Reader
from csms.certificates import authority
from csms.storage import (
    certificates,
    charger_reports,
    charging_needs,
    device_model,
    display_messages,
)

router = APIRouter(prefix="/api/v1", tags=["reported data"])


@router.get("/chargers/{charge_point_id}/device-model")
async def get_device_model(
    charge_point_id: str,
    context: Context,
    caller: Reader,
    component: str | None = None,
    variable: str | None = None,
    evse_id: int | None = None,
) -> dict[str, Any]:
    """Every known component/variable/attribute, and the progress of each report."""
    async with context.pool.acquire() as conn:
        variables = await device_model.variables(
            conn, charge_point_id, component, variable, evse_id
        )
        reports = await device_model.reports(conn, charge_point_id)
    return {"charge_point_id": charge_point_id, "variables": variables, "reports": reports}


@router.get("/chargers/{charge_point_id}/monitors")
async def get_monitors(charge_point_id: str, context: Context, caller: Reader) -> dict[str, Any]:
    monitors = await device_model.monitors(context.pool, charge_point_id)
    return {"charge_point_id": charge_point_id, "monitors": monitors}


@router.get("/chargers/{charge_point_id}/display-messages")
async def get_display_messages(
    charge_point_id: str, context: Context, caller: Reader
) -> dict[str, Any]:
    """Messages the charger shows, as set (SetDisplayMessage) or reported by it."""
    messages = await display_messages.of_charger(context.pool, charge_point_id)
    return {"charge_point_id": charge_point_id, "display_messages": messages}


@router.get("/chargers/{charge_point_id}/reports")
async def get_reports(
    charge_point_id: str,
    context: Context,
    caller: Reader,
    action: str | None = Query(default=None, description="e.g. NotifyDisplayMessages"),
    request_id: int | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Stored report parts, newest first (in seqNo order when one request_id is asked)."""
    parts = await charger_reports.find(context.pool, charge_point_id, action, request_id, limit)
    return {"charge_point_id": charge_point_id, "reports": parts}


@router.get("/chargers/{charge_point_id}/security-events")
async def get_security_events(
    charge_point_id: str,
    context: Context,
    caller: Reader,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """SecurityEventNotification of both versions, from the durable event log, newest first."""
    rows = await context.pool.fetch(
        """
        SELECT event_id, occurred_at, recorded_at, payload FROM events
        WHERE charge_point_id = $1 AND type = 'security_event_reported'
        ORDER BY id DESC LIMIT $2
        """,
        charge_point_id,
        limit,
    )
    events = [
        {"event_id": str(r["event_id"]), "occurred_at": r["occurred_at"],
         "recorded_at": r["recorded_at"], **json.loads(r["payload"])}
        for r in rows
    ]  # fmt: skip
    return {"charge_point_id": charge_point_id, "security_events": events}


@router.get("/chargers/{charge_point_id}/charging-needs")
async def get_charging_needs(
    charge_point_id: str, context: Context, caller: Reader
) -> dict[str, Any]:
    """ISO 15118 charging needs per EVSE, and limits set outside the CSMS."""
    async with context.pool.acquire() as conn:
        needs = await charging_needs.latest_charging_needs(conn, charge_point_id)
        limits = await charging_needs.external_limits(conn, charge_point_id)
    return {
        "charge_point_id": charge_point_id,
        "charging_needs": [
            {
                "evse_id": n.evse_id,
                "requested_energy_transfer": n.requested_energy_transfer,
                "departure_time": n.departure_time,
                "energy_amount_wh": n.energy_amount_wh,
                "max_schedule_tuples": n.max_schedule_tuples,
                "reported_at": n.reported_at,
                "needs": n.needs,
            }
            for n in needs
        ],
        "external_limits": limits,
    }


@router.get("/chargers/{charge_point_id}/certificates")
async def get_certificates(
    charge_point_id: str, context: Context, caller: Reader
) -> dict[str, Any]:
    """Certificates the CSMS's CA issued to this charger, newest first, with delivery status."""
    issued = await certificates.issued(context.pool, charge_point_id)
    return {"charge_point_id": charge_point_id, "certificates": issued}


@router.get("/certificates/ca")
async def get_ca(context: Context, caller: Reader) -> dict[str, Any]:
    """The CA certificate that signs charger certificates (install it as the chargers' root)."""
    async with context.pool.acquire() as conn:
        ca = await authority.load(conn, context.settings)
    return {
        "certificate_pem": ca.certificate_pem,
        "subject": ca.certificate.subject.rfc4514_string(),
    }
