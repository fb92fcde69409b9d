"""Operator API of fault detection: alerts (list, acknowledge, resolve), thresholds, health."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from csms.api.context import Context, Operator, Reader
from csms.monitoring import alerts_store, health_store
from csms.monitoring.health import Health
from csms.monitoring.rules import RULES, Thresholds

if TYPE_CHECKING:
    from csms.monitoring.alerts_service import AlertService

AlertStatus = Literal["open", "acknowledged", "resolved", "unresolved"]
SeverityName = Literal["info", "warning", "critical"]
Scope = Literal["site", "model", "charger"]


def build_router(service: AlertService) -> APIRouter:
    """Routes that close over the running :class:`AlertService`."""
    router = APIRouter(prefix="/api/v1", tags=["alerts"])

    @router.get("/alerts")
    async def list_alerts(
        context: Context,
        caller: Reader,
        status_: Annotated[
            AlertStatus | None,
            Query(alias="status", description="unresolved: open or acknowledged"),
        ] = None,
        severity: SeverityName | None = None,
        rule: str | None = None,
        charge_point_id: str | None = None,
        since: Annotated[datetime | None, Query(description="last seen at or after")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(description="next page: last id seen")] = None,
    ) -> dict[str, Any]:
        """Alerts, newest first, filtered by status, severity, rule and charger."""
        if rule is not None and rule not in RULES:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"rule: unknown rule {rule!r}; rules are {', '.join(RULES)}",
            )
        rows = await alerts_store.search(
            context.pool,
            status=status_,
            severity=severity,
            rule=rule,
            charge_point_id=charge_point_id,
            since=since,
            limit=limit,
            before_id=before_id,
        )
        items = [r.as_dict() for r in rows]
        return {"items": items, "next_before_id": items[-1]["id"] if len(items) == limit else None}

    @router.get("/alerts/{alert_id}")
    async def get_alert(alert_id: int, context: Context, caller: Reader) -> dict[str, Any]:
        row = await alerts_store.get(context.pool, alert_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
        return row.as_dict()

    @router.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge_alert(
        alert_id: int, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """An operator has seen the alert; it stays unresolved and keeps deduplicating."""
        row = await alerts_store.acknowledge(
            context.pool, alert_id, datetime.now(UTC), f"api:{caller.name}"
        )
        if row is None:
            raise _not_changeable(alert_id, await alerts_store.get(context.pool, alert_id))
        return row.as_dict()

    @router.post("/alerts/{alert_id}/resolve")
    async def resolve_alert(alert_id: int, context: Context, caller: Operator) -> dict[str, Any]:
        """Close the alert now; if the fault is still there, the next finding opens a new one."""
        row = await service.resolve_by_operator(alert_id, f"api:{caller.name}")
        if row is None:
            raise _not_changeable(alert_id, await alerts_store.get(context.pool, alert_id))
        return row.as_dict()

    @router.get("/alert-thresholds")
    async def get_thresholds(context: Context, caller: Reader) -> dict[str, Any]:
        """The default thresholds and every per-model and per-charger override."""
        overrides = await alerts_store.threshold_overrides(context.pool)
        return {
            "defaults": dataclasses.asdict(service.defaults),
            "overrides": [
                {"scope": scope, "key": key, "overrides": values}
                for (scope, key), values in sorted(overrides.items())
            ],
        }

    @router.put("/alert-thresholds/{scope}/{key}")
    async def put_thresholds(
        scope: Scope, key: str, body: dict[str, float], context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Override thresholds for a site (smart charging's), a charger model or one charger."""
        try:
            Thresholds().with_overrides(body)
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        await alerts_store.set_threshold_overrides(context.pool, scope, key, body)
        await service.reload_thresholds()
        return {"scope": scope, "key": key, "overrides": body}

    @router.delete("/alert-thresholds/{scope}/{key}", status_code=204)
    async def delete_thresholds(
        scope: Scope, key: str, context: Context, caller: Operator
    ) -> Response:
        if not await alerts_store.delete_threshold_overrides(context.pool, scope, key):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no overrides for {scope} {key!r}")
        await service.reload_thresholds()
        return Response(status_code=204)

    @router.get("/chargers/{charge_point_id}/health", tags=["health"])
    async def charger_health(
        charge_point_id: str,
        context: Context,
        caller: Reader,
        days: Annotated[float, Query(gt=0, le=365, description="rolling window")] = 14,
        until: Annotated[datetime | None, Query(description="end of the window (now)")] = None,
    ) -> dict[str, Any]:
        """Health score, what lowers it, and temperature drift per connector, in words."""
        since = (until or datetime.now(UTC)) - timedelta(days=days)
        found = await health_store.assess(context.pool, since, days, charge_point_id)
        if charge_point_id not in found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"charger {charge_point_id!r} not found")
        return _health_json(charge_point_id, *found[charge_point_id], details=True)

    @router.get("/health", tags=["health"])
    async def fleet_health(
        context: Context,
        caller: Reader,
        days: Annotated[float, Query(gt=0, le=365)] = 14,
        until: datetime | None = None,
        status_: Annotated[
            Literal["healthy", "watch", "at_risk"] | None, Query(alias="status")
        ] = None,
    ) -> dict[str, Any]:
        """Every charger's health, least healthy first."""
        since = (until or datetime.now(UTC)) - timedelta(days=days)
        found = await health_store.assess(context.pool, since, days)
        items = [
            _health_json(cp_id, model, h, details=False)
            for cp_id, (model, h) in found.items()
            if status_ is None or h.status == status_
        ]
        items.sort(key=lambda item: (item["score"], item["charge_point_id"]))
        return {"items": items, "days": days}

    return router


def _health_json(cp_id: str, model: str | None, h: Health, *, details: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "charge_point_id": cp_id,
        "model": model,
        "score": h.score,
        "status": h.status,
        "reasons": list(h.reasons),
    }
    if details:
        body["temperature_drift"] = [
            {
                "evse_id": d.connector[1],
                "excess_c": round(d.recent_excess_c, 1),
                "cohort_z": None if d.cohort_z is None else round(d.cohort_z, 1),
                "against_cohort": d.cohort_flag,
                "against_own_history": d.history_flag,
                "days": d.days_flagged,
                "explanation": d.explanation,
            }
            for d in h.drift
        ]
    return body


def _not_changeable(alert_id: int, row: alerts_store.AlertRow | None) -> HTTPException:
    if row is None:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    return HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is already {row.status}")
