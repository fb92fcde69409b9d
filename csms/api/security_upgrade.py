"""``POST /api/v1/chargers/{id}/security-profile``: move a charger up to profile 2 or 3.

A guided flow (OCPP 2.0.1 A05 / B09, 1.6 security whitepaper):

* checks first what the target needs: the TLS server for 2 and 3, a password
  for 2, a client CA and a certificate the charger accepted from the CSMS's CA
  for 3 (sign one with ``trigger_message`` SignChargingStationCertificate);
* 2.0.1: reads NetworkConfigurationPriority, installs a network profile with
  the wss URL (``CSMS_OCPP_TLS_PUBLIC_URL``) and the new profile in a free
  slot, puts that slot first, and resets the station once idle so it
  reconnects with it; 1.6: ChangeConfiguration SecurityProfile (the charger
  must already know the CSMS's wss URL, 1.6 has no standard key for it);
* every step goes through the commands' audited send path; once the charger
  took the change, the target is *pending*: the old profile still applies
  until the charger connects meeting the new one, and from then on nothing
  less is accepted (:mod:`csms.storage.security_upgrade`, the charger gate).
"""

# No `from __future__ import annotations`: FastAPI reads the route's types at runtime.

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from pydantic import Field

from csms.api.commands import run_command
from csms.api.context import Context, Operator
from csms.events import Protocol
from csms.router import ChargerNotConnected
from csms.storage import chargers, security_upgrade
from csms.storage.api_keys import ApiKey
from handlers.commands import CommandSpec
from handlers.commands.models import Command

router = APIRouter(prefix="/api/v1", tags=["chargers"])
_TAKEN = {"Accepted", "RebootRequired"}
_PRIORITY = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "NetworkConfigurationPriority"},
}


class ProfileUpgrade(Command):
    profile: Literal[2, 3]
    configuration_slot: int | None = Field(
        default=None, ge=0, description="2.0.1: the network profile slot (default: a free one)"
    )


def _conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, message)


async def _check_prerequisites(context: Context, charge_point_id: str, target: int) -> None:
    settings = context.settings
    stored = await chargers.credentials_of(context.pool, charge_point_id)
    if stored is None:
        raise _conflict(f"unknown charger {charge_point_id!r}")
    if stored.security_profile >= target:
        raise _conflict(f"the charger is at security profile {stored.security_profile}")
    if settings.tls_cert_file is None:
        raise _conflict("profiles 2 and 3 need the TLS server (CSMS_TLS_CERT_FILE)")
    if target == 2 and stored.password_hash is None:
        raise _conflict("profile 2 needs a charger password; set one with PUT /chargers/{id}")
    if target == 3:
        if settings.tls_ca_file is None:
            raise _conflict("profile 3 needs a client CA (CSMS_TLS_CA_FILE)")
        accepted = await context.pool.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM charger_certificates
                           WHERE charge_point_id = $1 AND status = 'Accepted'
                             AND certificate_type = 'ChargingStationCertificate'
                             AND not_after > now())
            """,
            charge_point_id,
        )
        if not accepted:
            raise _conflict(
                "profile 3 needs a charger certificate from the CSMS CA; send trigger_message "
                "SignChargingStationCertificate first"
            )


async def _step(
    context: Context,
    caller: ApiKey,
    charge_point_id: str,
    body: ProfileUpgrade,
    name: str,
    payload: Any,
) -> tuple[int, dict[str, Any]]:
    def translate(_: Command, __: int) -> Any:
        return payload

    spec = CommandSpec(name, ProfileUpgrade, translate, translate, name)
    answer = await run_command(context, caller, spec, charge_point_id, body)
    content: dict[str, Any] = json.loads(bytes(answer.body))
    return answer.status_code, content


def _answer_status(content: dict[str, Any]) -> str | None:
    response = content.get("response") or {}
    for key in ("setVariableResult", "getVariableResult"):
        if key in response:
            return str(response[key][0]["attributeStatus"])
    value = response.get("status")
    return None if value is None else str(value)


@router.post(
    "/chargers/{charge_point_id}/security-profile",
    summary="move the charger up to security profile 2 or 3",
)
async def upgrade_security_profile(
    charge_point_id: str, body: ProfileUpgrade, context: Context, caller: Operator
) -> JSONResponse:
    try:
        protocol = context.router.protocol_of(charge_point_id)
    except ChargerNotConnected as error:
        raise _conflict(str(error)) from None
    await _check_prerequisites(context, charge_point_id, body.profile)
    steps: list[dict[str, Any]] = []

    async def step(name: str, payload: Any) -> tuple[str | None, dict[str, Any]]:
        code, content = await _step(context, caller, charge_point_id, body, name, payload)
        outcome = _answer_status(content) if code == 200 else None
        steps.append(
            {
                "step": name,
                "http_status": code,
                "charger_status": outcome,
                "audit_id": content.get("audit_id"),
                "error": content.get("error"),
            }
        )
        return outcome, content

    taken = False
    if protocol is Protocol.V16:
        outcome, _ = await step(
            "security_profile.change_configuration",
            call16.ChangeConfiguration(key="SecurityProfile", value=str(body.profile)),
        )
        taken = outcome in _TAKEN
    else:
        url = context.settings.ocpp_tls_public_url
        if url is None:
            raise _conflict("2.0.1 chargers need CSMS_OCPP_TLS_PUBLIC_URL (the wss URL to give)")
        outcome, got = await step(
            "security_profile.get_priority", call201.GetVariables(get_variable_data=[_PRIORITY])
        )
        current = []
        if outcome == "Accepted":
            value = got["response"]["getVariableResult"][0].get("attributeValue") or ""
            current = [s.strip() for s in value.split(",") if s.strip()]
        slot = body.configuration_slot
        if slot is None:
            slot = max((int(s) for s in current if s.isdigit()), default=0) + 1
        connection = {
            "ocpp_version": "OCPP20",
            "ocpp_transport": "JSON",
            "ocpp_csms_url": url,
            "message_timeout": int(context.settings.response_timeout),
            "security_profile": body.profile,
            "ocpp_interface": "Wired0",
        }
        outcome, _ = await step(
            "security_profile.set_network_profile",
            call201.SetNetworkProfile(configuration_slot=slot, connection_data=connection),
        )
        if outcome == "Accepted":
            priority = ",".join([str(slot), *[s for s in current if s != str(slot)]])
            outcome, _ = await step(
                "security_profile.set_priority",
                call201.SetVariables(set_variable_data=[_PRIORITY | {"attribute_value": priority}]),
            )
            taken = outcome in _TAKEN
        if taken:
            await step("security_profile.reset", call201.Reset(type="OnIdle"))
    if taken:
        await security_upgrade.set_pending(context.pool, charge_point_id, body.profile)
    return JSONResponse(
        {
            "charge_point_id": charge_point_id,
            "target_profile": body.profile,
            "pending": taken,
            "steps": steps,
        },
        # A refusal is an answer (200, pending false); no answer is the step's own status.
        status_code=next((x["http_status"] for x in steps if x["http_status"] != 200), 200),
    )
