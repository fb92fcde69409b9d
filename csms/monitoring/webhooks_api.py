"""Webhook subscriptions over the operator API (``/api/v1/webhooks``)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, Field, field_validator

from csms.api.context import Operator, Reader
from csms.monitoring import webhook_store as store


class WebhookRequest(BaseModel):
    url: str = Field(description="http(s) URL the CSMS POSTs alerts to")
    secret: str | None = Field(
        None, min_length=16, description="HMAC key; generated (and returned once) when absent"
    )
    event_types: list[str] = Field(default_factory=list, description="e.g. alert_opened; [] = all")
    severities: list[str] = Field(default_factory=list, description="e.g. critical; [] = all")
    rules: list[str] = Field(default_factory=list, description="alert rule names; [] = all")
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("event_types")
    @classmethod
    def _alert_types(cls, types: list[str]) -> list[str]:
        if any(not t.startswith("alert_") for t in types):
            raise ValueError("webhooks carry alert events (types starting with 'alert_')")
        return types


def _json(subscription: store.Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "event_types": list(subscription.event_types),
        "severities": list(subscription.severities),
        "rules": list(subscription.rules),
        "description": subscription.description,
        "created_by": subscription.created_by,
        "created_at": subscription.created_at.isoformat(),
    }


def webhooks_router(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter(prefix="/api/v1/webhooks", tags=["monitoring"])

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def create(request: WebhookRequest, caller: Operator) -> dict[str, Any]:
        """Subscribe a URL; the answer holds the signing secret (shown only this once)."""
        secret = request.secret or secrets.token_urlsafe(32)
        subscription = await store.create_subscription(
            pool,
            request.url,
            secret,
            request.event_types,
            request.severities,
            request.rules,
            request.description,
            caller.name,
        )
        return {**_json(subscription), "secret": secret}

    @router.get("")
    async def list_all(_caller: Reader) -> list[dict[str, Any]]:
        return [_json(s) for s in await store.list_subscriptions(pool)]

    @router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(subscription_id: int, _caller: Operator) -> Response:
        if not await store.delete_subscription(pool, subscription_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook {subscription_id}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/{subscription_id}/deliveries")
    async def deliveries(
        subscription_id: int,
        _caller: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """The latest deliveries (pending, delivered, failed) with attempts and last error."""
        rows = await store.deliveries_of(pool, subscription_id, limit)
        return [
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
            | {"event_id": str(row["event_id"])}
            for row in rows
        ]

    return router
