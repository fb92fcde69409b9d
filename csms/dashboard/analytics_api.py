"""``/api/v1/analytics/...``: the analytics of :mod:`csms.dashboard.analytics` as JSON or CSV.

* ``GET /api/v1/analytics/fleet``: per time bucket for the selection (all
  chargers, or the ``charge_point_id`` given, repeatable), its summary and the
  duration and energy distributions.
* ``GET /api/v1/analytics/chargers``: one summary row per charger over the range.

Both take ``from`` and ``to`` (days, inclusive), ``tz`` (IANA name, default
UTC) and ``format=csv`` for a download.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Response, status

from csms.api.context import Context, Reader
from csms.dashboard import analytics

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

From = Annotated[date, Query(alias="from", description="first day, e.g. 2026-03-01")]
To = Annotated[date, Query(description="last day (inclusive)")]
Tz = Annotated[str, Query(description="IANA time zone the days are in")]
Chargers = Annotated[list[str] | None, Query(description="repeatable; none = all")]
Format = Annotated[Literal["json", "csv"], Query()]


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
    return analytics.Selection(edges, chargers or None, datetime.now(UTC))


def _csv(rows: list[dict[str, Any]], name: str) -> Response:
    return Response(
        analytics.to_csv(rows),
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
    format: Format = "json",
) -> Any:
    """Energy, utilisation, sessions, failures, durations, idle time and peak per bucket."""
    selection = _selection(first, to, tz, bucket, charge_point_id)
    async with context.pool.acquire() as conn:
        raw = await analytics.per_bucket(conn, selection, per_charger=False)
        histograms = await analytics.distributions(conn, selection)
    buckets = [analytics.figures(r) for r in raw]
    for row in buckets:
        del row["charge_point_id"]
    if format == "csv":
        return _csv(buckets, f"analytics-{first}-{to}")
    summary = analytics.figures(analytics.summarise(raw))
    del summary["charge_point_id"]
    return {
        "from": first,
        "to": to,
        "tz": tz,
        "bucket": bucket,
        "charge_point_ids": charge_point_id,
        "buckets": buckets,
        "summary": summary,
        "distributions": histograms,
    }


@router.get("/chargers")
async def per_charger(
    context: Context,
    caller: Reader,
    first: From,
    to: To,
    tz: Tz = "UTC",
    charge_point_id: Chargers = None,
    format: Format = "json",
) -> Any:
    """One row per charger: the same figures over the whole range."""
    selection = _selection(first, to, tz, "day", charge_point_id)
    whole = analytics.Selection(
        [selection.edges[0], selection.edges[-1]], selection.charge_point_ids, selection.now
    )
    async with context.pool.acquire() as conn:
        raw = await analytics.per_bucket(conn, whole, per_charger=True)
    rows = [analytics.figures(r) for r in raw]
    if format == "csv":
        return _csv(rows, f"analytics-chargers-{first}-{to}")
    return {"from": first, "to": to, "tz": tz, "items": rows}
