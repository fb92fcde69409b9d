"""Billing endpoints of the operator API: tariffs, assignments, CDRs, running cost.

Money and energy are JSON strings of decimals ("12.34"), never floats.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from billing import cdrs, store
from billing.money import decimal_text
from billing.tariff import Tariff, TouPeriod
from csms.api.context import Context, Operator, Reader

if TYPE_CHECKING:
    from billing.service import BillingService

_EXPORT_PAGE = 1000

NonNegative = Annotated[Decimal, Field(ge=0)]


class PeriodBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=40)
    price_per_kwh: NonNegative
    start: time = Field(description="wall time in the tariff's time zone, e.g. 07:00")
    end: time = Field(description="end <= start wraps over midnight; start == end: all day")
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default=[0, 1, 2, 3, 4, 5, 6], description="0 = Monday"
    )


class TariffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern="^[A-Z]{3}$", description="ISO 4217")
    time_zone: str = Field(default="UTC", description="IANA zone of the site, e.g. Europe/Berlin")
    price_per_kwh: NonNegative = Decimal(0)
    price_per_charging_minute: NonNegative = Decimal(0)
    price_per_parking_minute: NonNegative = Decimal(0)
    parking_grace_minutes: NonNegative = Decimal(0)
    flat_fee: NonNegative = Decimal(0)
    min_price: NonNegative | None = None
    max_price: NonNegative | None = None
    vat_rate: Annotated[Decimal, Field(ge=0, le=1, description="0.19 for 19 %")] = Decimal(0)
    periods: list[PeriodBody] = Field(default=[], max_length=50)

    def tariff(self) -> Tariff:
        fields = self.model_dump(exclude={"name", "periods"})
        periods = tuple(
            TouPeriod(p.name, p.price_per_kwh, p.start, p.end, frozenset(p.weekdays))
            for p in self.periods
        )
        try:
            return Tariff(**fields, periods=periods)
        except ZoneInfoNotFoundError:
            raise HTTPException(422, f"time_zone: unknown time zone {self.time_zone!r}") from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None


class AssignmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["token_group", "charger", "site", "default"]
    scope_id: str = Field(
        default="", max_length=200, description="group id, charger id or site id; '' for default"
    )
    tariff_id: int


def tariff_json(stored: store.StoredTariff) -> dict[str, Any]:
    t = stored.tariff
    money = {
        name: None if getattr(t, name) is None else decimal_text(getattr(t, name))
        for name in ("price_per_kwh", "price_per_charging_minute", "price_per_parking_minute",
                     "parking_grace_minutes", "flat_fee", "min_price", "max_price", "vat_rate")
    }  # fmt: skip
    return {
        "id": stored.id,
        "name": stored.name,
        "currency": t.currency,
        "time_zone": t.time_zone,
        **money,
        "periods": [store.period_to_json(p) for p in t.periods],
    }


def build_router(service: BillingService) -> APIRouter:
    """The billing routes; they close over the running billing service."""
    router = APIRouter(prefix="/api/v1", tags=["billing"])

    @router.post("/tariffs", status_code=status.HTTP_201_CREATED)
    async def create_tariff(body: TariffBody, context: Context, caller: Operator) -> dict[str, Any]:
        """Create a tariff (tariffs never change: create another and assign it)."""
        stored = await store.create_tariff(context.pool, body.name, body.tariff())
        return tariff_json(stored)

    @router.get("/tariffs")
    async def list_tariffs(
        context: Context,
        caller: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        items = await store.list_tariffs(context.pool, limit, offset)
        return {"items": [tariff_json(t) for t in items], "limit": limit, "offset": offset}

    @router.get("/tariffs/{tariff_id}")
    async def get_tariff(tariff_id: int, context: Context, caller: Reader) -> dict[str, Any]:
        stored = await store.get_tariff(context.pool, tariff_id)
        if stored is None:
            raise HTTPException(404, f"tariff {tariff_id} not found")
        return tariff_json(stored)

    @router.put("/tariff-assignments")
    async def assign(body: AssignmentBody, context: Context, caller: Operator) -> dict[str, Any]:
        """Apply a tariff to a token group, a charger, a site or by default (most specific
        wins, in that order); replaces what the scope had."""
        if (body.scope == "default") != (body.scope_id == ""):
            raise HTTPException(422, "scope_id: give one for this scope ('' only for default)")
        if await store.get_tariff(context.pool, body.tariff_id) is None:
            raise HTTPException(404, f"tariff {body.tariff_id} not found")
        await store.assign(context.pool, body.scope, body.scope_id, body.tariff_id)
        return body.model_dump()

    @router.get("/tariff-assignments")
    async def list_assignments(context: Context, caller: Reader) -> dict[str, Any]:
        return {"items": await store.list_assignments(context.pool)}

    @router.delete("/tariff-assignments", status_code=status.HTTP_204_NO_CONTENT)
    async def unassign(
        context: Context,
        caller: Operator,
        scope: Literal["token_group", "charger", "site", "default"],
        scope_id: str = "",
    ) -> Response:
        if not await store.unassign(context.pool, scope, scope_id):
            raise HTTPException(404, f"no tariff assigned to {scope} {scope_id!r}")
        return Response(status_code=204)

    @router.get("/cdrs")
    async def list_cdrs(
        context: Context,
        caller: Reader,
        charge_point_id: str | None = None,
        session_id: int | None = None,
        since: Annotated[datetime | None, Query(description="ended at or after")] = None,
        until: Annotated[datetime | None, Query(description="ended before")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(description="next page: last id seen")] = None,
    ) -> dict[str, Any]:
        items = await cdrs.list_cdrs(
            context.pool, charge_point_id=charge_point_id, session_id=session_id,
            since=since, until=until, limit=limit, before_id=before_id,
        )  # fmt: skip
        return {"items": items, "next_before_id": items[-1]["id"] if len(items) == limit else None}

    @router.get("/cdrs.csv", response_class=Response)
    async def export_cdrs(
        context: Context,
        caller: Reader,
        since: Annotated[datetime, Query(description="ended at or after")],
        until: Annotated[datetime, Query(description="ended before")],
        charge_point_id: str | None = None,
    ) -> Response:
        """Every CDR of sessions that ended in [since, until), as CSV."""
        rows: list[dict[str, Any]] = []
        before: int | None = None
        while True:
            page = await cdrs.list_cdrs(
                context.pool, charge_point_id=charge_point_id, since=since, until=until,
                limit=_EXPORT_PAGE, before_id=before,
            )  # fmt: skip
            rows.extend(page)
            if len(page) < _EXPORT_PAGE:
                break
            before = page[-1]["id"]
        rows.reverse()  # oldest first
        name = f"cdrs_{since:%Y%m%d}_{until:%Y%m%d}.csv"
        return Response(
            cdrs.to_csv(rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.get("/cdrs/{cdr_id}")
    async def get_cdr(cdr_id: int, context: Context, caller: Reader) -> dict[str, Any]:
        cdr = await cdrs.get_cdr(context.pool, cdr_id)
        if cdr is None:
            raise HTTPException(404, f"CDR {cdr_id} not found")
        return cdr

    @router.get("/sessions/{session_id}/cost")
    async def session_cost(session_id: int, caller: Reader) -> dict[str, Any]:
        """A session's cost so far (while it runs) or its CDR's totals (once ended)."""
        cost = await service.running_cost(session_id)
        if cost is None:
            raise HTTPException(404, f"session {session_id} not found")
        return cost

    return router
