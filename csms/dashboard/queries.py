"""Read queries behind the dashboard pages: fleet counts, one page of chargers, activity.

Each query reads one page or one aggregate, never the whole fleet's rows, so
the overview costs the same with 50 or 5,000 chargers.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.storage import Executor

# Register and power readings: the meter's total (no phase) at the outlet.
REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"

_FILTER = """
    ($1::bool IS NULL OR c.connected = $1)
    AND ($2::text IS NULL OR c.charge_point_id ILIKE '%' || $2 || '%'
         OR c.vendor ILIKE '%' || $2 || '%' OR c.model ILIKE '%' || $2 || '%')
    AND ($3::text IS NULL OR c.protocol = $3)
    AND ($4::text IS NULL OR EXISTS (
        SELECT 1 FROM connectors f
        WHERE f.charge_point_id = c.charge_point_id AND f.status = $4 AND f.evse_id > 0))
"""


async def fleet_counts(conn: Executor) -> dict[str, Any]:
    """Chargers (all, connected), connectors per status and active sessions."""
    row = await conn.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM chargers) AS chargers,
            (SELECT count(*) FROM chargers WHERE connected) AS connected,
            (SELECT count(*) FROM sessions WHERE status = 'active') AS active_sessions,
            (SELECT COALESCE(json_object_agg(status, n), '{}')
             FROM (SELECT status, count(*) AS n FROM connectors
                   WHERE evse_id > 0 GROUP BY status) s) AS connectors
        """
    )
    assert row is not None
    counts = dict(row)
    counts["connectors"] = json.loads(counts["connectors"])
    counts["disconnected"] = counts["chargers"] - counts["connected"]
    return counts


async def charger_page(
    conn: Executor,
    *,
    connected: bool | None,
    search: str | None,
    protocol: str | None,
    connector_status: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[dict[str, Any]]]:
    """How many chargers match the filter, and one page of them with their connectors."""
    args = (connected, search or None, protocol, connector_status)
    total = await conn.fetchval(f"SELECT count(*) FROM chargers c WHERE {_FILTER}", *args)
    # The page's ids first, then their details: with OFFSET, per-row subqueries in the
    # select list would run for every skipped row too (page 60 took 5x page 1).
    rows = await conn.fetch(
        f"""
        WITH page AS (
            SELECT c.charge_point_id FROM chargers c WHERE {_FILTER}
            ORDER BY c.charge_point_id LIMIT $5 OFFSET $6
        )
        SELECT c.charge_point_id, c.registration, c.protocol, c.vendor, c.model,
               c.firmware_version, c.connected, c.last_seen_at, c.connected_at,
               c.disconnected_at,
               COALESCE((
                   SELECT json_agg(json_build_object(
                       'evse_id', k.evse_id, 'connector_id', k.connector_id,
                       'status', k.status, 'detail', k.detail, 'error_code', k.error_code,
                       'status_at', k.status_at) ORDER BY k.evse_id, k.connector_id)
                   FROM connectors k
                   WHERE k.charge_point_id = c.charge_point_id AND k.evse_id > 0
               ), '[]') AS connectors,
               (SELECT count(*) FROM sessions s
                WHERE s.charge_point_id = c.charge_point_id AND s.status = 'active')
                   AS active_sessions
        FROM page JOIN chargers c USING (charge_point_id)
        ORDER BY c.charge_point_id
        """,
        *args,
        limit,
        offset,
    )
    items = []
    for row in rows:
        item = dict(row)
        item["connectors"] = json.loads(item["connectors"])
        items.append(item)
    return int(total), items


async def recent_events(conn: Executor, charge_point_id: str, limit: int) -> list[dict[str, Any]]:
    """The charger's latest events (what it sent, as the CSMS recorded it), newest first."""
    rows = await conn.fetch(
        """
        SELECT id, type, evse_id, connector_id, occurred_at, recorded_at, payload
        FROM events WHERE charge_point_id = $1 ORDER BY id DESC LIMIT $2
        """,
        charge_point_id,
        limit,
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


async def recent_commands(conn: Executor, charge_point_id: str, limit: int) -> list[dict[str, Any]]:
    """The operator commands sent to the charger, with their outcome, newest first."""
    rows = await conn.fetch(
        """
        SELECT id, actor, command, protocol, request, outcome, response, error,
               requested_at, duration_ms
        FROM command_audit WHERE charge_point_id = $1
        ORDER BY requested_at DESC, id DESC LIMIT $2
        """,
        charge_point_id,
        limit,
    )
    result = []
    for r in rows:
        item = dict(r)
        item["request"] = json.loads(item["request"])
        item["response"] = None if item["response"] is None else json.loads(item["response"])
        result.append(item)
    return result


async def session_readings(
    conn: Executor, session_id: int, after: datetime | None
) -> list[tuple[datetime, str, float]]:
    """(time, measurand, value) of the session's register and power readings, in time order."""
    rows = await conn.fetch(
        """
        SELECT sampled_at, measurand, value FROM meter_samples
        WHERE session_id = $1 AND measurand = ANY($2::text[]) AND phase IS NULL
          AND (location IS NULL OR location = 'Outlet')
          AND ($3::timestamptz IS NULL OR sampled_at > $3)
        ORDER BY sampled_at, id
        """,
        session_id,
        [REGISTER, POWER],
        after,
    )
    return [(r["sampled_at"], r["measurand"], float(r["value"])) for r in rows]


async def site_load_history(
    conn: Executor, site_id: str, start: datetime, end: datetime, bucket_s: int
) -> list[dict[str, Any]]:
    """The site's plans (smart charging's ``load_plan_computed`` events) per time bucket.

    Read from the event log, so the chart shows what was stored, not only what a page
    has seen. Per bucket: the lowest limit in force and the highest allocated and
    measured current per line (the conservative view of a bucket).
    """
    rows = await conn.fetch(
        """
        SELECT date_bin(make_interval(secs => $4), occurred_at, $2) AS t,
               min((payload->>'limit_a')::float8) AS limit_a,
               max((payload->'allocated_a'->>0)::float8) AS a1,
               max((payload->'allocated_a'->>1)::float8) AS a2,
               max((payload->'allocated_a'->>2)::float8) AS a3,
               max((payload->'measured_a'->>0)::float8) AS m1,
               max((payload->'measured_a'->>1)::float8) AS m2,
               max((payload->'measured_a'->>2)::float8) AS m3
        FROM events
        WHERE charge_point_id = $1 AND type = 'load_plan_computed'
          AND occurred_at >= $2 AND occurred_at < $3
        GROUP BY 1 ORDER BY 1
        """,
        f"site:{site_id}",
        start,
        end,
        float(bucket_s),
    )
    return [
        {
            "t": r["t"].isoformat(),
            "limit_a": r["limit_a"],
            "allocated_a": [r["a1"], r["a2"], r["a3"]],
            "measured_a": [r["m1"], r["m2"], r["m3"]],
        }
        for r in rows
    ]


async def site_profiles_sent(
    conn: Executor, site_id: str, start: datetime, end: datetime, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """Every charging profile the load manager sent for the site in the window, newest first."""
    where = """
        FROM events
        WHERE type = 'charging_limit_set' AND occurred_at >= $2 AND occurred_at < $3
          AND payload->>'site_id' = $1
    """
    total = await conn.fetchval(f"SELECT count(*) {where}", site_id, start, end)
    rows = await conn.fetch(
        f"""
        SELECT occurred_at, charge_point_id, payload {where}
        ORDER BY occurred_at DESC, id DESC LIMIT $4
        """,
        site_id,
        start,
        end,
        limit,
    )
    profiles = []
    for r in rows:
        payload = json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
        profiles.append(
            {
                "at": r["occurred_at"].isoformat(),
                "charge_point_id": r["charge_point_id"],
                "evse_id": payload.get("evse_id"),
                "transaction_id": payload.get("transaction_id"),
                "purpose": payload.get("purpose"),
                "limit_a": payload.get("limit_a"),
                "previous_limit_a": payload.get("previous_limit_a"),
                "status": payload.get("status"),
                "reason": payload.get("reason"),
            }
        )
    return int(total), profiles
