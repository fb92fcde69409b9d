"""Operator API of smart charging: sites, their groups, chargers' places, cuts, live load.

Every change that moves a limit re-plans the site at once (the answer does
not wait for the chargers; ``GET /sites/{id}/load`` shows the result).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from csms.api.context import Context, Operator, Reader
from smart_charging import store
from smart_charging.model import SiteConfig
from smart_charging.policies import DEFAULT_POLICY, Policy
from smart_charging.shifting import PriceSchedule, TariffEntry

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class SiteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    phase_limit_a: float | None = Field(default=None, ge=0, description="A per line")
    power_limit_kw: float | None = Field(default=None, ge=0, description="kW over all lines")
    min_current_a: float = Field(default=6.0, ge=0, le=80, description="below it: pause")
    fallback_current_a: float | None = Field(
        default=None,
        ge=0,
        le=80,
        description="TxDefaultProfile (A per line) before/without the CSMS; "
        "null: each charger's failsafe share of the site's limits",
    )
    arrival_reserve_a: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="A per line held back from the sessions for arrivals: a new session "
        "starts at once at up to this (shared by the idle chargers); 0: every ampere goes "
        "to the sessions present and an arrival gets its share after one plan",
    )
    allocation_policy: Policy = Field(
        default=DEFAULT_POLICY,
        description="order and share of current inside one operator priority: 'fair' "
        "(deadline urgency, then max-min fair shares), or each session its maximum while it "
        "fits in the order 'edf' (earliest departure), 'llf' (least laxity), 'fcfs' (first "
        "come first served), 'round-robin' (arrival order rotated every 15 min)",
    )


class SiteCreate(SiteBody):
    site_id: str = _ID


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent_id: str | None = Field(default=None, description="None = directly under the site")
    name: str | None = Field(default=None, max_length=200)
    phase_limit_a: float | None = Field(default=None, ge=0)
    power_limit_kw: float | None = Field(default=None, ge=0)


class PlaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str
    group_id: str | None = None
    max_current_a: float = Field(default=32.0, ge=0, le=1000, description="charger, per line")
    connector_max_current_a: float | None = Field(default=None, ge=0, le=1000)
    phases: Literal[1, 3] = 3
    priority: int = Field(default=0, ge=-100, le=100, description="higher is served first")


class CutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit_a: float = Field(ge=0, description="A per line while the cut lasts")
    duration_s: float | None = Field(default=None, gt=0, description="None = until lifted")


class PreferencesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: int | None = Field(default=None, ge=-100, le=100)
    departure_at: datetime | None = None
    energy_wanted_wh: float | None = Field(default=None, ge=0)


class PriceEntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: time = Field(description="local time of day it starts, e.g. 22:00")
    price: float = Field(ge=0, description="price per kWh from start until the next entry")


class PricesBody(BaseModel):
    """A daily time-of-use tariff: each entry holds until the next; the last wraps to the first."""

    model_config = ConfigDict(extra="forbid")
    time_zone: str = Field(default="UTC", description="IANA time zone of the times of day")
    entries: list[PriceEntryBody] = Field(min_length=1, max_length=96)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {value!r}") from e
        return value

    @field_validator("entries")
    @classmethod
    def _distinct_starts(cls, value: list[PriceEntryBody]) -> list[PriceEntryBody]:
        if len({e.start for e in value}) != len(value):
            raise ValueError("two entries start at the same time of day")
        return value


def _prices_dict(prices: PriceSchedule) -> dict[str, Any]:
    return {
        "time_zone": prices.zone,
        "entries": [{"start": e.start.isoformat(), "price": e.price} for e in prices.entries],
    }


def _site_dict(site: SiteConfig) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "phase_limit_a": site.phase_limit_a,
        "power_limit_kw": site.power_limit_kw,
        "min_current_a": site.min_current_a,
        "fallback_current_a": site.fallback_current_a,
        "arrival_reserve_a": site.arrival_reserve_a,
        "allocation_policy": site.allocation_policy,
        "demand_response": (
            {
                "limit_a": site.dr_limit_a,
                "until": site.dr_until.isoformat() if site.dr_until else None,
            }
            if site.dr_limit_a is not None
            else None
        ),
    }


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def build_router(service: SmartChargingService) -> APIRouter:
    """The routes, closing over the running service (so a change re-plans at once)."""
    router = APIRouter(prefix="/api/v1", tags=["smart charging"])

    @router.get("/sites")
    async def list_sites(context: Context, caller: Reader) -> dict[str, Any]:
        return {"items": [_site_dict(s) for s in await store.list_sites(context.pool)]}

    @router.post("/sites", status_code=status.HTTP_201_CREATED)
    async def create_site(body: SiteCreate, context: Context, caller: Operator) -> dict[str, Any]:
        try:
            site = await store.create_site(
                context.pool, body.site_id, body.model_dump(exclude={"site_id"})
            )
        except store.Conflict as e:
            raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
        return _site_dict(site)

    @router.get("/sites/{site_id}")
    async def get_site(site_id: str, context: Context, caller: Reader) -> dict[str, Any]:
        tree = await store.load_tree(context.pool, site_id)
        if tree is None:
            raise _not_found(f"site {site_id!r}")
        return _site_dict(tree.site) | {
            "groups": [_slots(g) for g in tree.groups],
            "chargers": [_slots(c) for c in tree.chargers],
        }

    @router.put("/sites/{site_id}")
    async def put_site(
        site_id: str, body: SiteBody, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Change a site's limits (every field is set; omitted ones get their default)."""
        site = await store.update_site(context.pool, site_id, body.model_dump())
        if site is None:
            raise _not_found(f"site {site_id!r}")
        service.request_replan(site_id, "site_limit_changed")
        return _site_dict(site)

    @router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_site(site_id: str, context: Context, caller: Operator) -> Response:
        if not await store.delete_site(context.pool, site_id):
            raise _not_found(f"site {site_id!r}")
        service.views.pop(site_id, None)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put("/sites/{site_id}/groups/{group_id}")
    async def put_group(
        site_id: str, group_id: str, body: GroupBody, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Create or replace a group (feeder, circuit...) nested under the site or a group."""
        async with context.pool.acquire() as conn, conn.transaction():
            if body.parent_id is not None and group_id in await store.group_ancestors(
                conn, site_id, body.parent_id
            ):
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"group {group_id!r} cannot hang under its own child"
                )
            try:
                group = await store.put_group(conn, site_id, group_id, body.model_dump())
            except store.Conflict as e:
                raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
        service.request_replan(site_id, "site_limit_changed")
        return _slots(group)

    @router.delete("/sites/{site_id}/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_group(
        site_id: str, group_id: str, context: Context, caller: Operator
    ) -> Response:
        """Delete a group and its sub-groups; its chargers move up to the site."""
        if not await store.delete_group(context.pool, site_id, group_id):
            raise _not_found(f"group {group_id!r} of site {site_id!r}")
        service.request_replan(site_id, "site_limit_changed")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/sites/{site_id}/demand-response")
    async def cut(
        site_id: str, body: CutBody, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """A demand-response cut: the site's per-line limit is at most ``limit_a`` for a while."""
        until = None
        if body.duration_s is not None:
            until = service.clock.now() + timedelta(seconds=body.duration_s)
        site = await store.update_site(
            context.pool, site_id, {"dr_limit_a": body.limit_a, "dr_until": until}
        )
        if site is None:
            raise _not_found(f"site {site_id!r}")
        service.request_replan(site_id, "demand_response")
        return _site_dict(site)

    @router.delete("/sites/{site_id}/demand-response")
    async def lift_cut(site_id: str, context: Context, caller: Operator) -> dict[str, Any]:
        site = await store.update_site(
            context.pool, site_id, {"dr_limit_a": None, "dr_until": None}
        )
        if site is None:
            raise _not_found(f"site {site_id!r}")
        service.request_replan(site_id, "demand_response_lifted")
        return _site_dict(site)

    @router.put("/sites/{site_id}/prices")
    async def put_prices(
        site_id: str, body: PricesBody, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Set the site's daily price schedule: sessions with a departure move to cheap hours."""
        prices = PriceSchedule(
            body.time_zone,
            tuple(TariffEntry(e.start.replace(tzinfo=None), e.price) for e in body.entries),
        )
        try:
            await store.put_prices(context.pool, site_id, prices)
        except store.Conflict as e:
            raise _not_found(f"site {site_id!r}") from e
        service.request_replan(site_id, "prices_changed")
        return _prices_dict(prices)

    @router.get("/sites/{site_id}/prices")
    async def get_prices(site_id: str, context: Context, caller: Reader) -> dict[str, Any]:
        prices = await store.get_prices(context.pool, site_id)
        if prices is None:
            raise _not_found(f"price schedule of site {site_id!r}")
        return _prices_dict(prices)

    @router.delete("/sites/{site_id}/prices", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_prices(site_id: str, context: Context, caller: Operator) -> Response:
        if not await store.delete_prices(context.pool, site_id):
            raise _not_found(f"price schedule of site {site_id!r}")
        service.request_replan(site_id, "prices_removed")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/sites/{site_id}/load")
    async def site_load(site_id: str, context: Context, caller: Reader) -> dict[str, Any]:
        """The last plan: limit in force, allocated and measured current per line, sessions."""
        view = service.views.get(site_id)
        if view is None and await service.plans(site_id):
            view = await service.replan(site_id, "view_requested")
        if view is not None:
            return {**view.as_dict(), "planner": service.node_id}
        stored = await service.stored_view(site_id)  # planned by another node (or not yet)
        if stored is None:
            if await store.get_site(context.pool, site_id) is None:
                raise _not_found(f"site {site_id!r}")
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "site not planned yet")
        return stored

    @router.get("/chargers/{charge_point_id}/site")
    async def get_place(charge_point_id: str, context: Context, caller: Reader) -> dict[str, Any]:
        place = await store.get_place(context.pool, charge_point_id)
        if place is None:
            raise _not_found(f"site of charger {charge_point_id!r}")
        return place

    @router.put("/chargers/{charge_point_id}/site")
    async def put_place(
        charge_point_id: str, body: PlaceBody, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Put a charger in a site (and a group of it), with its limits and priority."""
        async with context.pool.acquire() as conn, conn.transaction():
            before = await store.site_of(conn, charge_point_id)
            try:
                place = await store.put_place(conn, charge_point_id, body.model_dump())
            except store.Conflict as e:
                raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
        service.forget_charger_site(charge_point_id)
        for site_id in {before, body.site_id} - {None}:
            assert site_id is not None
            service.request_replan(site_id, "charger_assigned")
        return place

    @router.delete("/chargers/{charge_point_id}/site", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_place(charge_point_id: str, context: Context, caller: Operator) -> Response:
        site_id = await store.delete_place(context.pool, charge_point_id)
        if site_id is None:
            raise _not_found(f"site of charger {charge_point_id!r}")
        service.forget_charger_site(charge_point_id)
        service.request_replan(site_id, "charger_removed")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put("/chargers/{charge_point_id}/transactions/{transaction_id}/preferences")
    async def put_preferences(
        charge_point_id: str,
        transaction_id: str,
        body: PreferencesBody,
        context: Context,
        caller: Operator,
    ) -> dict[str, Any]:
        """A session's priority (e.g. an emergency vehicle), departure time, energy wanted."""
        await store.put_preferences(
            context.pool,
            charge_point_id,
            transaction_id,
            body.priority,
            body.departure_at,
            body.energy_wanted_wh,
        )
        site_id = await store.site_of(context.pool, charge_point_id)
        if site_id is not None:
            service.request_replan(site_id, "session_preferences")
        return body.model_dump(mode="json")

    return router


def _slots(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}
