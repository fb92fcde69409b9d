"""``POST /api/v1/chargers/{id}/commands/{name}``: one route per operator command.

The route waits for the charger's answer and returns it; every attempt goes
to the audit table *before* the call is sent (outcome ``pending``) and is
completed with its outcome, whatever the charger answers. Status codes: 409
charger not connected, 504 no answer in time, 502 the charger answered with a
CALLERROR, with something that is not a valid answer (kept raw in the audit
row) or dropped the connection, 400 a command the charger's version lacks.
"""

# No `from __future__ import annotations`: each route's body type is a
# runtime variable that FastAPI must see as a class.

import time
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError

from csms import command_answers
from csms.api.context import Context, Operator
from csms.connection import CallErrorReceived, InvalidAnswer
from csms.interop.profiles import AmbiguousProfile, fit_for_charger
from csms.router import ChargerNotConnected
from csms.storage import audit
from csms.storage.api_keys import ApiKey
from handlers.commands import COMMANDS, CommandSpec, NotInThisVersion, build
from handlers.commands.models import Command

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/chargers/{charge_point_id}/commands", tags=["commands"])


def _ocpp_json(payload: Any) -> dict[str, Any]:
    """An ocpp dataclass as the camelCase JSON that went over the wire.

    (The ocpp library reads some 1.6 numbers as Decimal; JSON gets numbers.)
    """
    data: dict[str, Any] = jsonable_encoder(
        snake_to_camel_case(remove_nones(serialize_as_dict(payload)))
    )
    return data


class _Outcome(Exception):
    def __init__(
        self,
        status_code: int,
        outcome: str,
        message: str,
        extra: dict[str, Any] | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.outcome = outcome
        self.message = message
        self.extra = extra or {}
        self.raw = raw


async def _send(
    context: Context, spec: CommandSpec, charge_point_id: str, command: Command
) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    try:
        protocol = await context.router.find_protocol(charge_point_id)
    except ChargerNotConnected as error:
        raise _Outcome(status.HTTP_409_CONFLICT, "not_connected", str(error)) from None
    request_id = await audit.next_request_id(context.pool)
    try:
        payload = build(spec, protocol, command, request_id)
        # A profile leaves with a start where it needs one, in a unit the charger takes.
        payload = await fit_for_charger(context.pool, charge_point_id, payload)
    except NotInThisVersion as error:
        raise _Outcome(status.HTTP_400_BAD_REQUEST, "rejected_by_csms", str(error)) from None
    except AmbiguousProfile as error:
        raise _Outcome(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "rejected_by_csms", str(error)
        ) from None
    request = _ocpp_json(payload)
    try:
        response = await context.router.call(charge_point_id, payload)
    except ChargerNotConnected as error:
        raise _Outcome(status.HTTP_409_CONFLICT, "not_connected", str(error)) from None
    except OCPPError as error:  # our request would break the schema (bad operator input)
        cause = error.details.get("cause") if isinstance(error.details, dict) else None
        raise _Outcome(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "rejected_by_csms",
            f"the OCPP request would be invalid: {cause or error.description}",
        ) from None
    except TimeoutError:
        raise _Outcome(
            status.HTTP_504_GATEWAY_TIMEOUT,
            "timeout",
            f"{charge_point_id} did not answer within {context.settings.response_timeout:g}s",
        ) from None
    except CallErrorReceived as error:
        raise _Outcome(
            status.HTTP_502_BAD_GATEWAY,
            "call_error",
            f"{charge_point_id} answered with CALLERROR {error.code}",
            {"call_error": {"code": error.code, "description": error.description,
                            "details": error.details}},
            error.raw or None,
        ) from None  # fmt: skip
    except InvalidAnswer as error:
        raise _Outcome(
            status.HTTP_502_BAD_GATEWAY,
            "invalid_answer",
            f"{charge_point_id} answered with something that is not OCPP: {error.reason}",
            raw=error.raw,
        ) from None
    except ConnectionError:
        raise _Outcome(
            status.HTTP_502_BAD_GATEWAY,
            "not_connected",
            f"{charge_point_id} disconnected before answering",
        ) from None
    await command_answers.record(context.pool, charge_point_id, payload, response)
    raw = getattr(response, "raw", None)
    return protocol.value, request, _ocpp_json(response), raw


def _protocol_of(context: Context, charge_point_id: str) -> str | None:
    try:
        return context.router.protocol_of(charge_point_id).value
    except ChargerNotConnected:
        return None


async def run_command(
    context: Context, caller: ApiKey, spec: CommandSpec, charge_point_id: str, command: Command
) -> JSONResponse:
    requested_at = datetime.now(UTC)
    started = time.perf_counter()
    body = command.model_dump(mode="json", exclude_unset=True)
    protocol: str | None = None
    with structlog.contextvars.bound_contextvars(
        charge_point_id=charge_point_id, command=spec.name, actor=caller.name
    ):
        # The intent is on record before anything is sent: a crash or a charger's
        # answer that cannot be handled still leaves the attempt in the trail.
        audit_id = await audit.record_intent(
            context.pool,
            api_key_id=caller.id,
            actor=caller.name,
            charge_point_id=charge_point_id,
            command=spec.name,
            request=body,
            requested_at=requested_at,
        )
        response: dict[str, Any] | None
        raw: str | None = None
        try:
            protocol, request, response, raw = await _send(context, spec, charge_point_id, command)
            outcome, status_code, error = "answered", status.HTTP_200_OK, None
            content: dict[str, Any] = {
                "protocol": protocol,
                "request": request,
                "response": response,
            }
        except _Outcome as failure:
            outcome, status_code, error = failure.outcome, failure.status_code, failure.message
            content = {"error": failure.message, **failure.extra}
            response = failure.extra or None
            raw = failure.raw
        if protocol is None:
            protocol = _protocol_of(context, charge_point_id)
        await audit.complete(
            context.pool,
            audit_id,
            protocol=protocol,
            outcome=outcome,
            response=response,
            error=error,
            raw_answer=raw if outcome in {"invalid_answer", "call_error"} else None,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        log.info("api.command", outcome=outcome, status=status_code)
    content |= {"charge_point_id": charge_point_id, "command": spec.name, "audit_id": audit_id}
    return JSONResponse(content, status_code=status_code)


def _route(spec: CommandSpec) -> None:
    model = spec.model

    if any(field.is_required() for field in model.model_fields.values()):

        async def endpoint(
            charge_point_id: str,
            body: model,  # type: ignore[valid-type]
            context: Context,
            caller: Operator,
        ) -> JSONResponse:
            return await run_command(context, caller, spec, charge_point_id, body)

    else:  # nothing required: an empty request body is fine

        async def endpoint(  # type: ignore[misc]
            charge_point_id: str,
            context: Context,
            caller: Operator,
            body: model | None = None,  # type: ignore[valid-type]
        ) -> JSONResponse:
            return await run_command(context, caller, spec, charge_point_id, body or model())

    router.add_api_route(
        f"/{spec.name}",
        endpoint,
        methods=["POST"],
        summary=spec.summary,
        name=spec.name,
        operation_id=f"command_{spec.name}",
    )


for _spec in COMMANDS.values():
    _route(_spec)


@router.post("/{command}", include_in_schema=False)
async def unknown_command(charge_point_id: str, command: str, caller: Operator) -> None:
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"unknown command {command!r}; commands: {', '.join(sorted(COMMANDS))}",
    )
