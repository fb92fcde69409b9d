"""``POST /api/v1/chargers/{id}/password-rotation``: a new Basic Auth password, CSMS-driven.

A random 40-character password (20 bytes, hex: fits 1.6 AuthorizationKey and
2.0.1 passwordString alike) is generated, its hash stored as pending, and the
charger asked to take it: 1.6 ChangeConfiguration AuthorizationKey, 2.0.1
SetVariables SecurityCtrlr.BasicAuthPassword, through the commands' audited
send path. Accepted (or RebootRequired) makes it the current password and
keeps the old one valid until the charger has connected with the new one
(:mod:`csms.storage.password_rotation`); any other answer forgets it. The
password itself is never returned, logged or audited.
"""

# No `from __future__ import annotations`: FastAPI reads the route's types at runtime.

import asyncio
import json
import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.api.commands import run_command
from csms.api.context import Context, Operator
from csms.events import Protocol
from csms.router import ChargerNotConnected
from csms.security.passwords import hash_password
from csms.storage import password_rotation
from handlers.commands import CommandSpec
from handlers.commands.models import NoArguments

router = APIRouter(prefix="/api/v1", tags=["chargers"])
_TAKEN = {"Accepted", "RebootRequired"}


def _request(protocol: Protocol, password: str) -> Any:
    if protocol is Protocol.V16:
        return call16.ChangeConfiguration(key="AuthorizationKey", value=password)
    return call201.SetVariables(
        set_variable_data=[
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "attribute_value": password,
            }
        ]
    )


def _charger_status(content: dict[str, Any]) -> str | None:
    response = content.get("response") or {}
    if "setVariableResult" in response:
        return str(response["setVariableResult"][0]["attributeStatus"])
    value = response.get("status")
    return None if value is None else str(value)


@router.post(
    "/chargers/{charge_point_id}/password-rotation",
    summary="give the charger a new Basic Auth password",
)
async def rotate_password(charge_point_id: str, context: Context, caller: Operator) -> JSONResponse:
    try:
        protocol = context.router.protocol_of(charge_point_id)
    except ChargerNotConnected as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    password = secrets.token_hex(20)
    password_hash = await asyncio.to_thread(hash_password, password)
    if not await password_rotation.set_pending(context.pool, charge_point_id, password_hash):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the charger has no password to rotate; set one with PUT /chargers/{id}",
        )
    payload = _request(protocol, password)

    def translate(_: NoArguments, __: int) -> Any:
        return payload

    spec = CommandSpec("password_rotation", NoArguments, translate, translate, "rotate password")
    answer = await run_command(context, caller, spec, charge_point_id, NoArguments())
    content = json.loads(bytes(answer.body))
    charger_status = _charger_status(content)
    if answer.status_code == 200 and charger_status in _TAKEN:
        await password_rotation.accepted(context.pool, charge_point_id, password_hash)
        rotated = True
    elif answer.status_code == 200 or answer.status_code == 502:
        # A definite no (or a CALLERROR): nothing changed at the charger.
        await password_rotation.abandoned(context.pool, charge_point_id, password_hash)
        rotated = False
    else:
        # No answer: the charger may have taken it. The pending password stays valid
        # and becomes current the first time the charger connects with it.
        rotated = False
    content.pop("request", None)  # it holds the password
    content["rotated"] = rotated
    content["charger_status"] = charger_status
    return JSONResponse(content, status_code=answer.status_code)
