"""HTTP endpoints of live monitoring: ``/metrics`` and availability reports.

Availability is reported per charger, for the fleet and per site
(``GET /api/v1/sites/{site_id}/availability``: smart charging owns the rest of
``/api/v1/sites``; this router only adds the report, over the chargers placed
in the site when asked).

``GET /metrics`` is the Prometheus scrape target. It needs no API key (a
Prometheus server is rarely given one); it exposes only bounded aggregates,
never a charger identity, token or address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, HTTPException, Query, Response, status
from prometheus_client import CONTENT_TYPE_LATEST

from csms.api.context import Reader
from csms.monitoring import connectivity_store as store
from csms.monitoring import metrics, metrics_workers, sites
from csms.monitoring.availability import (
    ChargerAvailability,
    SiteAvailability,
    charger_availability,
)

log = structlog.get_logger(__name__)

DEFAULT_WINDOW = timedelta(hours=24)
# Module level: FastAPI resolves these (postponed) annotations in the module's namespace.
From = Annotated[datetime | None, Query(alias="from", description="start (default: to - 24 h)")]
To = Annotated[datetime | None, Query(alias="to", description="end (default: now)")]


async def refresh_periodically(refresh: Callable[[], Awaitable[None]]) -> None:
    """Under ``--workers N``: keep this worker's scrape-time gauges fresh for the scrapes
    that land on another worker (csms.monitoring.metrics_workers); until cancelled."""
    while True:
        await asyncio.sleep(metrics_workers.REFRESH_INTERVAL)
        try:
            await refresh()
            metrics_workers.refresh_functions()
        except Exception:  # the next round tries again; the loop must outlive a failure
            log.warning("metrics.refresh_failed", exc_info=True)


def metrics_router(refresh: Callable[[], Awaitable[None]]) -> APIRouter:
    """``GET /metrics``; ``refresh`` brings the scrape-time gauges up to date first."""
    router = APIRouter(tags=["monitoring"])

    @router.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        await refresh()
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def window_of(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The report window: ``to`` defaults to now, ``from`` to 24 h before ``to``; 422 if empty."""
    end = _aware(end) if end is not None else now
    start = _aware(start) if start is not None else end - DEFAULT_WINDOW
    end = min(end, now)  # the future has no availability yet
    if start >= end:
        raise HTTPException(
            422,
            "'from' must be before 'to' and before now",
        )
    return start, end


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def availability_json(report: ChargerAvailability, *, details: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "charge_point_id": report.charge_point_id,
        "observed_seconds": report.observed_s,
        "online_seconds": report.online_s,
        "online_percent": report.online_percent,
        "connectors": [
            {
                "evse_id": c.evse_id,
                "connector_id": c.connector_id,
                "observed_seconds": c.observed_s,
                "usable_seconds": c.usable_s,
                "usable_percent": c.usable_percent,
            }
            for c in report.connectors
        ],
    }
    if details:
        body["downtime"] = [
            {"from": d.start.isoformat(), "to": d.end.isoformat() if d.end else None}
            for d in report.downtime
        ]
    return body


async def availability_reports(
    pool: asyncpg.Pool, charge_point_ids: list[str] | None, start: datetime, end: datetime
) -> list[ChargerAvailability]:
    if charge_point_ids == []:
        return []
    async with pool.acquire() as conn:
        since = await store.known_since(conn, charge_point_ids)
        ids = list(since)
        downtime = await store.downtime_in(conn, ids, start, end)
        statuses = await store.statuses_in(conn, ids, start, end)
    return [
        charger_availability(
            cp, (start, end), since[cp], downtime.get(cp, []), statuses.get(cp, [])
        )
        for cp in ids
    ]


def availability_router(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["monitoring"])

    @router.get("/chargers/{charge_point_id}/availability")
    async def charger_report(
        charge_point_id: str, _caller: Reader, start: From = None, end: To = None
    ) -> dict[str, Any]:
        """% of the window the charger was online and each connector usable, with its downtime."""
        window = window_of(start, end, datetime.now(UTC))
        reports = await availability_reports(pool, [charge_point_id], *window)
        if not reports:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no charger {charge_point_id!r}")
        body = availability_json(reports[0], details=True)
        return {"from": window[0].isoformat(), "to": window[1].isoformat(), **body}

    @router.get("/availability")
    async def fleet_report(_caller: Reader, start: From = None, end: To = None) -> dict[str, Any]:
        """The same for every charger, and the fleet's time-weighted online %."""
        window = window_of(start, end, datetime.now(UTC))
        reports = await availability_reports(pool, None, *window)
        observed = sum(r.observed_s for r in reports)
        online = sum(r.online_s for r in reports)
        return {
            "from": window[0].isoformat(),
            "to": window[1].isoformat(),
            "online_percent": None if observed <= 0 else round(100.0 * online / observed, 3),
            "chargers": [availability_json(r, details=False) for r in reports],
        }

    return router


def site_availability_router(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["monitoring"])

    @router.get("/sites/{site_id}/availability")
    async def site_report(
        site_id: str, _caller: Reader, start: From = None, end: To = None
    ) -> dict[str, Any]:
        """Online % and connector-usable % over the site's chargers, and each charger's row."""
        window = window_of(start, end, datetime.now(UTC))
        async with pool.acquire() as conn:
            if not await sites.site_exists(conn, site_id):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id!r}")
            members = await sites.chargers_of_site(conn, site_id)
        report = SiteAvailability(
            site_id, tuple(await availability_reports(pool, members, *window))
        )
        return {
            "site_id": site_id,
            "from": window[0].isoformat(),
            "to": window[1].isoformat(),
            "observed_seconds": report.observed_s,
            "online_seconds": report.online_s,
            "online_percent": report.online_percent,
            "connector_usable_percent": report.connector_usable_percent,
            "chargers": [availability_json(r, details=False) for r in report.chargers],
        }

    return router
