"""What API endpoints need of the running CSMS, and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException, Request, status

from csms.api.frontdoor import CALLER_STATE_KEY
from csms.config import Settings
from csms.router import CommandRouter
from csms.storage import api_keys
from csms.storage.api_keys import ApiKey


@dataclass(frozen=True, slots=True)
class ApiContext:
    pool: asyncpg.Pool
    router: CommandRouter
    settings: Settings


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


async def get_caller(
    request: Request, context: Context, authorization: Annotated[str | None, Header()] = None
) -> ApiKey:
    """The API key in ``Authorization: Bearer <key>``; 401 without a valid one.

    The front door (:mod:`csms.api.frontdoor`) has already checked it, before
    the body was read, and left the key it found in the request's state.
    """
    checked = getattr(request.state, CALLER_STATE_KEY, None)
    if isinstance(checked, ApiKey):
        return checked
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = await api_keys.find_active(context.pool, key.strip())
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


async def get_operator(caller: Annotated[ApiKey, Depends(get_caller)]) -> ApiKey:
    """Callers that may change things; a read-only key gets 403."""
    if caller.role != "operator":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is read-only")
    return caller


Reader = Annotated[ApiKey, Depends(get_caller)]
Operator = Annotated[ApiKey, Depends(get_operator)]
