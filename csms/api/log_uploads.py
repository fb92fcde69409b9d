"""Logs without an FTP server: GetLog / GetDiagnostics uploading to the API port itself.

``POST /api/v1/chargers/{id}/logs`` makes a one-time upload URL
(``/api/v1/log-uploads/{token}``, the token is its only credential, stored
hashed, valid ``CSMS_UPLOADS_VALID_HOURS``) and sends GetLog (2.0.1, and the
1.6 security extension for the security log) or GetDiagnostics (1.6) with it,
through the commands' audited send path. The charger then PUTs or POSTs the
file (raw body or multipart/form-data); it is kept under the data folder. The
charger's Uploading/Uploaded statuses and the file are listed per charger.
"""

# No `from __future__ import annotations`: FastAPI reads the route's types at runtime.

import asyncio
import email.parser
import email.policy
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, JSONResponse
from ocpp.v16 import call as call16
from pydantic import Field

from csms.api.commands import run_command
from csms.api.context import Context, Operator, Reader
from csms.events import Protocol
from csms.router import ChargerNotConnected
from csms.storage import audit, log_uploads
from handlers._time import ocpp_time
from handlers.commands import CommandSpec
from handlers.commands import models as m
from handlers.commands import v16 as commands16
from handlers.commands import v201 as commands201

router = APIRouter(prefix="/api/v1", tags=["logs"])
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class LogRequest(m.Command):
    log_type: Literal["DiagnosticsLog", "SecurityLog"] = "DiagnosticsLog"
    start_time: datetime | None = None
    stop_time: datetime | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_interval: int | None = Field(default=None, ge=0)


def _message(protocol: Protocol, log_type: str) -> str:
    """1.6 uploads diagnostics with GetDiagnostics (Core), the security log with GetLog."""
    if protocol is Protocol.V16 and log_type == "DiagnosticsLog":
        return "GetDiagnostics"
    return "GetLog"


def _request(body: LogRequest, location: str, protocol: Protocol, request_id: int) -> Any:
    command = m.GetDiagnostics(location=location, **body.model_dump(exclude_unset=True))
    if protocol is Protocol.V201:
        return commands201.get_log(command, request_id)
    if _message(protocol, body.log_type) == "GetDiagnostics":
        return commands16.get_diagnostics(command, request_id)
    log: dict[str, Any] = {"remote_location": location}
    if body.start_time:
        log["oldest_timestamp"] = ocpp_time(body.start_time)
    if body.stop_time:
        log["latest_timestamp"] = ocpp_time(body.stop_time)
    return call16.GetLog(
        log=log,
        log_type=body.log_type,
        request_id=request_id,
        retries=body.retries,
        retry_interval=body.retry_interval,
    )


@router.post("/chargers/{charge_point_id}/logs", summary="have the charger upload a log here")
async def request_logs(
    charge_point_id: str,
    request: Request,
    context: Context,
    caller: Operator,
    body: LogRequest | None = None,
) -> JSONResponse:
    body = body or LogRequest()
    try:
        protocol = context.router.protocol_of(charge_point_id)
    except ChargerNotConnected as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    token = secrets.token_urlsafe(24)
    request_id = await audit.next_request_id(context.pool)
    base = (context.settings.uploads_public_url or str(request.base_url)).rstrip("/")
    location = f"{base}/api/v1/log-uploads/{token}"
    message = _message(protocol, body.log_type)
    upload_id = await log_uploads.create(
        context.pool,
        charge_point_id,
        token,
        message,
        body.log_type,
        request_id,
        caller.name,
        datetime.now(UTC) + timedelta(hours=context.settings.uploads_valid_hours),
    )
    payload = _request(body, location, protocol, request_id)

    def translate(_: m.Command, __: int) -> Any:
        return payload

    spec = CommandSpec("request_logs", LogRequest, translate, translate, "upload a log")
    answer = await run_command(context, caller, spec, charge_point_id, body)
    answer.headers["Location"] = f"/api/v1/chargers/{charge_point_id}/logs/{upload_id}"
    return answer


@router.get("/chargers/{charge_point_id}/logs")
async def list_logs(charge_point_id: str, context: Context, caller: Reader) -> dict[str, Any]:
    """Requested uploads, newest first, with the charger's last status and the file received."""
    uploads = await log_uploads.of_charger(context.pool, charge_point_id)
    return {"charge_point_id": charge_point_id, "uploads": uploads}


@router.get("/chargers/{charge_point_id}/logs/{upload_id}/file")
async def download_log(
    charge_point_id: str, upload_id: int, context: Context, caller: Reader
) -> FileResponse:
    upload = await log_uploads.find(context.pool, charge_point_id, upload_id)
    if upload is None or upload["file_path"] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no file received for this upload")
    path = Path(upload["file_path"])
    if not await asyncio.to_thread(path.is_file):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the file is on another CSMS node")
    return FileResponse(path, filename=upload["file_name"])


@router.api_route("/log-uploads/{token}", methods=["PUT", "POST"], include_in_schema=False)
@router.api_route(
    "/log-uploads/{token}/{file_name}", methods=["PUT", "POST"], include_in_schema=False
)
async def receive_log(
    token: str, request: Request, context: Context, file_name: str | None = None
) -> dict[str, Any]:
    """The charger's upload: the token in the URL is its credential (one file per token)."""
    upload = await log_uploads.by_token(context.pool, token)
    if upload is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown upload URL")
    if upload["expires_at"] < datetime.now(UTC):
        raise HTTPException(status.HTTP_410_GONE, "this upload URL has expired")
    if upload["received_at"] is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "a file was already uploaded here")
    limit = context.settings.uploads_max_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"larger than {limit} bytes")
    content_type = request.headers.get("content-type", "")
    data, name = bytes(body), file_name
    if content_type.startswith("multipart/form-data"):
        data, name = _multipart_file(content_type, data, name)
    name = _SAFE_NAME.sub("_", name or f"{upload['log_type']}-{upload['request_id']}.log")[:200]
    folder = (
        context.settings.data_dir / "log-uploads" / _SAFE_NAME.sub("_", upload["charge_point_id"])
    )
    path = folder / f"{upload['id']}-{name}"
    await asyncio.to_thread(_write, path, data)
    await log_uploads.received(context.pool, upload["id"], name, str(path), len(data))
    return {"received": len(data), "file_name": name}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _multipart_file(content_type: str, body: bytes, name: str | None) -> tuple[bytes, str | None]:
    """The first file part of a multipart/form-data body (stdlib parser, bounded input)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_filename() or part.get_param("name", header="content-disposition"):
            payload = part.get_payload(decode=True)
            return (payload if isinstance(payload, bytes) else b""), part.get_filename() or name
    raise HTTPException(status.HTTP_400_BAD_REQUEST, "no file part in the multipart body")
