"""``POST /api/v1/chargers/{id}/ocpp/{Action}``: any CSMS-initiated action, raw payload.

The friendly commands (:mod:`csms.api.commands`) cover what operators do
every day in version-neutral words; this route sends whatever the charger's
OCPP version allows, with the payload exactly as OCPP spells it (camelCase).
Before anything is sent the payload is checked against that version's JSON
schema (the ``ocpp`` library's), so a typo is a 422 naming the field, never
a CALLERROR from the charger. The send itself (audit row, 409/502/504 status
codes, the charger's answer) is the friendly commands' path.
"""

# No `from __future__ import annotations`: FastAPI reads the route's types at runtime.

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, status
from fastapi.responses import JSONResponse
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from pydantic import ConfigDict

from csms.api.commands import run_command
from csms.api.context import Context, Operator
from csms.connection import snake_case_keys
from csms.events import Protocol
from csms.ocpp_catalog import ALL_ACTIONS, CSMS_INITIATED
from csms.router import ChargerNotConnected
from csms.storage import audit
from csms.storage.api_keys import ApiKey
from csms.validation import CALL, first_error
from handlers.commands import CommandSpec
from handlers.commands.models import Command

router = APIRouter(prefix="/api/v1/chargers/{charge_point_id}/ocpp", tags=["ocpp"])

_CALL_MODULE = {Protocol.V16: call16, Protocol.V201: call201}
_SCHEMA_VERSION = {Protocol.V16: "1.6", Protocol.V201: "2.0.1"}


class RawPayload(Command):
    """The OCPP payload as sent on the wire; its keys are checked by the OCPP schema."""

    model_config = ConfigDict(extra="allow")


def refusal(protocol: Protocol, action: str, payload: dict[str, Any]) -> str | None:
    """Why ``payload`` cannot be sent as ``action`` to a charger of ``protocol``, or None."""
    if action not in ALL_ACTIONS[protocol]:
        return f"{action} is not an action of OCPP {_SCHEMA_VERSION[protocol]}"
    if action not in CSMS_INITIATED[protocol]:
        return f"{action} is sent by the charger, not by the CSMS"
    error = first_error(CALL, action, _SCHEMA_VERSION[protocol], payload)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return f"schema of {action} ({_SCHEMA_VERSION[protocol]}): {where}: {error.message}"


def build_call(protocol: Protocol, action: str, payload: dict[str, Any]) -> Any:
    """The ``ocpp`` library's request dataclass for a schema-valid payload."""
    return getattr(_CALL_MODULE[protocol], action)(**snake_case_keys(payload))


@router.post("/{action}", summary="send any CSMS-initiated OCPP action with a raw payload")
async def send_raw(
    charge_point_id: str,
    action: str,
    context: Context,
    caller: Operator,
    payload: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
) -> JSONResponse:
    name = f"ocpp/{action}"
    try:
        protocol = context.router.protocol_of(charge_point_id)
    except ChargerNotConnected:
        protocol = None  # run_command answers 409 and audits it
    if protocol is not None:
        reason = refusal(protocol, action, payload)
        if reason is not None:
            return await _refuse(context, caller, charge_point_id, name, protocol, payload, reason)
    request = build_call(protocol, action, payload) if protocol is not None else None

    def translate(_: Command, __: int) -> Any:
        return request

    spec = CommandSpec(name, RawPayload, translate, translate, f"raw OCPP {action}")
    return await run_command(context, caller, spec, charge_point_id, RawPayload(**payload))


async def _refuse(
    context: Context,
    caller: ApiKey,
    charge_point_id: str,
    name: str,
    protocol: Protocol,
    payload: dict[str, Any],
    reason: str,
) -> JSONResponse:
    """422, with an audit row: operators see refused attempts as well as sent ones."""
    audit_id = await audit.record_command(
        context.pool,
        api_key_id=caller.id,
        actor=caller.name,
        charge_point_id=charge_point_id,
        command=name,
        protocol=protocol.value,
        request=payload,
        outcome="rejected_by_csms",
        response=None,
        error=reason,
        requested_at=datetime.now(UTC),
        duration_ms=0.0,
    )
    content = {"error": reason, "charge_point_id": charge_point_id, "command": name,
               "audit_id": audit_id}  # fmt: skip
    return JSONResponse(content, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


__all__ = ["build_call", "refusal", "router"]
