"""Read and management endpoints: chargers, sessions, id tokens, API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from csms.api.context import Context, Operator, Reader
from csms.storage import api_keys, chargers, tokens, views

router = APIRouter(prefix="/api/v1")


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


# -- chargers ----------------------------------------------------------------


@router.get("/chargers", tags=["chargers"])
async def list_chargers(
    context: Context,
    caller: Reader,
    connected: bool | None = None,
    q: Annotated[str | None, Query(description="part of id, vendor or model")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    items = await views.list_chargers(
        context.pool, connected=connected, search=q, limit=limit, offset=offset
    )
    return {"items": items, "limit": limit, "offset": offset}


@router.get("/chargers/{charge_point_id}", tags=["chargers"])
async def get_charger(charge_point_id: str, context: Context, caller: Reader) -> dict[str, Any]:
    charger = await views.get_charger(context.pool, charge_point_id)
    if charger is None:
        raise _not_found(f"charger {charge_point_id!r}")
    return charger


class ChargerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registration: Literal["Accepted", "Pending", "Rejected"] | None = None
    security_profile: Literal[0, 1, 2, 3] | None = Field(
        default=None, description="OCPP security profile; 1 and 2 need a password"
    )
    password: str | None = Field(
        default=None, min_length=16, max_length=40, description="Basic Auth; stored hashed"
    )


@router.put("/chargers/{charge_point_id}", tags=["chargers"])
async def put_charger(
    charge_point_id: str, body: ChargerUpdate, context: Context, caller: Operator
) -> dict[str, Any]:
    """Register a charger, or change its registration or how it authenticates.

    A charger that is not known yet is created (Accepted unless ``registration``
    says otherwise). ``password`` is write-only: answers say ``has_password``.
    """
    if body.password is not None and body.security_profile is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "security_profile: give the profile the password is for (1 or 2)",
        )
    async with context.pool.acquire() as conn, conn.transaction():
        if body.registration is not None or await views.get_charger(conn, charge_point_id) is None:
            await views.set_registration(conn, charge_point_id, body.registration or "Accepted")
        if body.security_profile is not None:
            try:
                await chargers.set_credentials(
                    conn,
                    charge_point_id,
                    password=body.password,
                    security_profile=body.security_profile,
                )
            except ValueError as error:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, f"password: {error}"
                ) from None
    charger = await views.get_charger(context.pool, charge_point_id)
    assert charger is not None
    return charger


@router.delete("/chargers/{charge_point_id}", tags=["chargers"], status_code=204)
async def delete_charger(charge_point_id: str, context: Context, caller: Operator) -> Response:
    result = await views.delete_charger(context.pool, charge_point_id)
    if result == "missing":
        raise _not_found(f"charger {charge_point_id!r}")
    if result == "has_sessions":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"charger {charge_point_id!r} has sessions on record; set its registration to "
            "Rejected instead of deleting it",
        )
    return Response(status_code=204)


# -- sessions ----------------------------------------------------------------


@router.get("/sessions", tags=["sessions"])
async def list_sessions(
    context: Context,
    caller: Reader,
    charge_point_id: str | None = None,
    id_token: str | None = None,
    since: Annotated[datetime | None, Query(description="started at or after")] = None,
    until: Annotated[datetime | None, Query(description="started before")] = None,
    status_: Annotated[Literal["active", "ended"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(description="next page: last id seen")] = None,
) -> dict[str, Any]:
    items = await views.list_sessions(
        context.pool,
        charge_point_id=charge_point_id,
        id_token=id_token,
        since=since,
        until=until,
        status=status_,
        limit=limit,
        before_id=before_id,
    )
    next_before = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "next_before_id": next_before}


@router.get("/sessions/{session_id}", tags=["sessions"])
async def get_session(session_id: int, context: Context, caller: Reader) -> dict[str, Any]:
    session = await views.get_session(context.pool, session_id)
    if session is None:
        raise _not_found(f"session {session_id}")
    return session


# -- id tokens ---------------------------------------------------------------


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = "Accepted"
    expires_at: datetime | None = None
    group_id: str | None = Field(default=None, max_length=36)


def _token(record: tokens.TokenRecord) -> dict[str, Any]:
    return {
        "id_token": record.id_token,
        "status": record.status,
        "expires_at": record.expires_at,
        "group_id": record.group_id,
    }


@router.get("/id-tokens", tags=["id tokens"])
async def list_tokens(context: Context, caller: Reader) -> dict[str, Any]:
    return {"items": [_token(t) for t in await tokens.all_tokens(context.pool)]}


@router.get("/id-tokens/{id_token}", tags=["id tokens"])
async def get_token(id_token: str, context: Context, caller: Reader) -> dict[str, Any]:
    async with context.pool.acquire() as conn:
        record = await tokens.find(conn, id_token)
    if record is None:
        raise _not_found(f"id token {id_token!r}")
    return _token(record)


@router.put("/id-tokens/{id_token}", tags=["id tokens"])
async def put_token(
    id_token: str, body: TokenBody, context: Context, caller: Operator
) -> dict[str, Any]:
    if len(id_token) > 36:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "id_token: at most 36 characters"
        )
    await tokens.upsert(context.pool, id_token, body.status, body.expires_at, body.group_id)
    return {"id_token": id_token, **body.model_dump()}


@router.delete("/id-tokens/{id_token}", tags=["id tokens"], status_code=204)
async def delete_token(id_token: str, context: Context, caller: Operator) -> Response:
    if not await tokens.delete(context.pool, id_token):
        raise _not_found(f"id token {id_token!r}")
    return Response(status_code=204)


# -- API keys ----------------------------------------------------------------


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Literal["operator", "read-only"]


def _key(key: api_keys.ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "key_prefix": key.key_prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@router.post("/api-keys", tags=["api keys"], status_code=201)
async def create_api_key(body: NewApiKey, context: Context, caller: Operator) -> dict[str, Any]:
    """The secret is in this answer only; it is stored hashed."""
    key, secret = await api_keys.create(context.pool, body.name, body.role)
    return {**_key(key), "key": secret}


@router.get("/api-keys", tags=["api keys"])
async def list_api_keys(context: Context, caller: Operator) -> dict[str, Any]:
    return {"items": [_key(k) for k in await api_keys.list_all(context.pool)]}


@router.delete("/api-keys/{key_id}", tags=["api keys"], status_code=204)
async def revoke_api_key(key_id: int, context: Context, caller: Operator) -> Response:
    if not await api_keys.revoke(context.pool, key_id):
        raise _not_found(f"active API key {key_id}")
    return Response(status_code=204)
