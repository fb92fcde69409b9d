"""Helpers for the fault-detection tests: a CSMS with fast alert timing, and its API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from csms.storage import api_keys
from tests.api_clients import api_client
from tests.conftest import RunningCsms, StartCsms

FAST_ALERTS: dict[str, Any] = {
    "alerts_clear_hold": 0.5,  # an alert resolves 0.5 s after its condition clears
    "alerts_tick_interval": 0.1,
}


@dataclass
class AlertApi:
    csms: RunningCsms
    operator: httpx.AsyncClient
    reader: httpx.AsyncClient

    async def alerts(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.reader.get("/alerts", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def unresolved(self, rule: str | None = None, **params: Any) -> list[dict[str, Any]]:
        extra = {"rule": rule} if rule else {}
        return await self.alerts(status="unresolved", **extra, **params)

    async def events(self, charge_point_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """alert_* events in the event log (the outbox), oldest first."""
        rows = await self.csms.pool.fetch(
            "SELECT type, payload FROM events WHERE type LIKE 'alert_%' "
            "AND ($1::text IS NULL OR charge_point_id = $1) ORDER BY id",
            charge_point_id,
        )
        return [(r["type"], json.loads(r["payload"])) for r in rows]


@contextlib.asynccontextmanager
async def alert_api(start_csms: StartCsms, **overrides: Any) -> AsyncIterator[AlertApi]:
    csms = await start_csms(**{**FAST_ALERTS, "response_timeout": 2.0, **overrides})
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    _, operator_key = await api_keys.create(csms.pool, "ops-team", "operator")
    _, reader_key = await api_keys.create(csms.pool, "dashboard", "read-only")
    async with (
        api_client(base, operator_key) as op,
        api_client(base, reader_key) as ro,
    ):
        yield AlertApi(csms, op, ro)
