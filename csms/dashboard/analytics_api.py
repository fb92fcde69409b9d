"""``/api/v1/analytics/...``: the analytics of :mod:`csms.dashboard.analytics` as JSON or CSV.

* ``GET /api/v1/analytics/fleet``: per time bucket for the selection (all
  chargers, or the ``charge_point_id`` given, repeatable), its summary and the
  duration and energy distributions.

Every row has ``revenue``: a list of ``{currency, sessions, net, tax, total}``
(amounts as decimal strings) from billing's CDRs of the sessions that ended in
it, one entry per currency (:mod:`csms.dashboard.revenue`); in CSV, columns per
currency.
* ``GET /api/v1/analytics/chargers``: one summary row per charger over the range.
* ``GET /api/v1/analytics/sites``: one row per smart-charging site (404 without sites).

All take ``from`` and ``to`` (days, inclusive), ``tz`` (IANA name, default
UTC), ``site_id`` (the chargers of one site) and ``format=csv`` for a download.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Response, status

from csms.api.context import Context, Reader
from csms.dashboard import analytics, revenue
from csms.storage import Executor

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

From = Annotated[date, Query(alias="from", description="first day, e.g. 2026-03-01")]
To = Annotated[date, Query(description="last day (inclusive)")]
Tz = Annotated[str, Query(description="IANA time zone the days are in")]
Chargers = Annotated[list[str] | None, Query(description="repeatable; none = all")]
Format = Annotated[Literal["json", "csv"], Query()]
Site = Annotated[str | None, Query(description="only the chargers of this site")]


async def _scope(
    conn: Executor, chargers: list[str] | None, site_id: str | None
) -> list[str] | None:
    """The chargers asked for: those named, those of the site, or both (None = all)."""
    if site_id is None:
        return chargers or None
    if not await analytics.has_sites(conn):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "sites: smart charging is not installed")
    of_site = await analytics.chargers_of_site(conn, site_id)
    return [c for c in of_site if not chargers or c in chargers]


def _selection(
    first: date, last: date, tz: str, bucket: analytics.Bucket, chargers: list[str] | None
) -> analytics.Selection:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"tz: unknown time zone {tz!r}"
        ) from None
    try:
        edges = analytics.bucket_edges(first, last, zone, bucket)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"to: {error}") from None
    return analytics.Selection(edges, chargers, datetime.now(UTC))


def _csv(rows: list[dict[str, Any]], name: str) -> Response:
    return Response(
        analytics.to_csv(revenue.flatten_for_csv(rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/fleet")
async def fleet(
    context: Context,
    caller: Reader,
    first: From,
    to: To,
    tz: Tz = "UTC",
    bucket: Literal["day", "hour"] = "day",
    charge_point_id: Chargers = None,
    site_id: Site = None,
    format: Format = "json",
) -> Any:
    """Energy, utilisation, sessions, failures, durations, idle, peak and revenue per bucket."""
    async with context.pool.acquire() as conn:
        chargers = await _scope(conn, charge_point_id, site_id)
        selection = _selection(first, to, tz, bucket, chargers)
        raw = await analytics.per_bucket(conn, selection)
        histograms = await analytics.distributions(conn, selection)
        money = await revenue.per_bucket(conn, selection)
    buckets = [analytics.figures(r) for r in raw]
    for row in buckets:
        row["revenue"] = revenue.as_json(money.get((row.pop("group_id"), row["start"]), {}))
    if format == "csv":
        return _csv(buckets, f"analytics-{first}-{to}")
    summary = analytics.figures(analytics.summarise(raw))
    del summary["group_id"]
    summary["revenue"] = revenue.as_json(revenue.combine(money.values()))
    return {
        "from": first,
        "to": to,
        "tz": tz,
        "bucket": bucket,
        "charge_point_ids": chargers,
        "site_id": site_id,
        "buckets": buckets,
        "summary": summary,
        "distributions": histograms,
    }


async def _per_group(
    context: Context,
    grouping: analytics.Grouping,
    first: date,
    to: date,
    tz: str,
    chargers: list[str] | None,
    site_id: str | None,
) -> list[dict[str, Any]]:
    """One row per charger or site over the whole range (one bucket from first to last edge)."""
    async with context.pool.acquire() as conn:
        if grouping == "site" and not await analytics.has_sites(conn):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "sites: smart charging is not installed")
        scope = await _scope(conn, chargers, site_id)
        selection = _selection(first, to, tz, "day", scope)
        whole = analytics.Selection(
            [selection.edges[0], selection.edges[-1]], selection.charge_point_ids, selection.now
        )
        raw = await analytics.per_bucket(conn, whole, grouping)
        money = await revenue.per_bucket(conn, whole, grouping)
    key = "charge_point_id" if grouping == "charger" else "site_id"
    rows = []
    for figures in map(analytics.figures, raw):
        group = figures.pop("group_id")
        figures["revenue"] = revenue.as_json(money.get((group, figures["start"]), {}))
        rows.append({key: group, **figures})
    return rows


@router.get("/chargers")
async def per_charger(
    context: Context,
    caller: Reader,
    first: From,
    to: To,
    tz: Tz = "UTC",
    charge_point_id: Chargers = None,
    site_id: Site = None,
    format: Format = "json",
) -> Any:
    """One row per charger: the same figures over the whole range."""
    rows = await _per_group(context, "charger", first, to, tz, charge_point_id, site_id)
    if format == "csv":
        return _csv(rows, f"analytics-chargers-{first}-{to}")
    return {"from": first, "to": to, "tz": tz, "items": rows}


@router.get("/sites")
async def per_site(
    context: Context,
    caller: Reader,
    first: From,
    to: To,
    tz: Tz = "UTC",
    format: Format = "json",
) -> Any:
    """One row per site (``site_id`` null: the chargers in no site); peak is the site's own."""
    rows = await _per_group(context, "site", first, to, tz, None, None)
    if format == "csv":
        return _csv(rows, f"analytics-sites-{first}-{to}")
    return {"from": first, "to": to, "tz": tz, "items": rows}
