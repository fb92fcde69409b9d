"""Charging analytics over a date range, computed in SQL from sessions and meter readings.

Definitions (each figure is per time bucket and per group: the whole selection,
or one charger):

* **Energy**: increments of each session's energy register (its start reading,
  every ``Energy.Active.Import.Register`` sample and its stop reading), an
  increment spread evenly over the time between its two readings and split at
  UTC quarter hours (which day and hour buckets of any real time zone are made of).
* **Occupied**: time a session was open (start to end, or to now while
  active). **Charging**: time between two register readings of a session
  whose register went up. Both as % of bucket length x charging points (EVSEs).
* **Sessions**: sessions started in the bucket; **failed**: of those ended,
  the ones that delivered no energy or whose token was not accepted.
* **Peak demand**: the highest 15-minute average power (energy in a quarter
  hour x 4), quarter hours aligned to UTC.
* **Idle after full**: from a session's last register increase to its end.

Pre-aggregation: ended sessions are rolled up into quarter-hour slots
(:mod:`csms.dashboard.rollup`, ``analytics_session_slots``); a query reads
those slots, and the raw samples only of sessions not rolled up (active ones,
or changed since their rollup), through the same slot SQL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from csms.dashboard.rollup import Connection, slot_ctes
from csms.storage import Executor

Bucket = Literal["hour", "day"]
WORK_MEM = "64MB"  # per sort/hash of the analytics query; a week of 5,000 chargers fits
MAX_BUCKETS = 24 * 92  # a quarter of hourly buckets, or six years of daily ones

# Histogram edges: sessions shorter than the first edge fall in no bin (impossible
# here, the first edge is 0); the last bin is open-ended.
DURATION_EDGES_MIN = (0, 15, 30, 60, 120, 240, 480)
ENERGY_EDGES_KWH = (0, 5, 10, 20, 40, 60)


def bucket_edges(first: date, last: date, tz: ZoneInfo, bucket: Bucket) -> list[datetime]:
    """Edges of the buckets covering the days ``first``..``last`` (inclusive) in ``tz``.

    Edges are local midnights (or local hours), so a day across a DST change is
    23 or 25 hours long, as its operators lived it.
    """
    if last < first:
        raise ValueError("the range ends before it starts")
    # In UTC: arithmetic on two datetimes of one zone is wall-clock arithmetic in Python.
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    if bucket == "day":
        days = (last - first).days + 1
        edges = [datetime.combine(first + timedelta(days=i), time(), tz) for i in range(days + 1)]
    else:
        # Stepping in UTC, every hour exists exactly once across DST changes.
        hours = int((end - start).total_seconds() // 3600)
        edges = [start + timedelta(hours=i) for i in range(hours + 1)]
    if len(edges) - 1 > MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} buckets; choose a shorter range or day buckets")
    return edges


# What the rows are grouped by: one fixed SQL expression per grouping (never
# built from input). Sites come from smart charging's table, when it exists.
GROUPINGS = {
    "all": "NULL::text",
    "charger": "c.charge_point_id",
    "site": (
        "(SELECT x.site_id FROM sc_charger_sites x WHERE x.charge_point_id = c.charge_point_id)"
    ),
}
Grouping = Literal["all", "charger", "site"]

# Bucket i (1-based) is [$1[i], $1[i+1]). width_bucket(t, $1) is the bucket holding t,
# found by binary search in the sorted edges, so an interval finds the buckets it
# overlaps without a join over every bucket (an hourly week is 168 of them).
# Group keys are never NULL ('' = whole selection / no site), so joins are hash joins.
_PER_BUCKET_SQL = """
WITH buckets AS (
    SELECT i AS b, $1[i] AS b_start, $1[i + 1] AS b_end
    FROM generate_series(1, cardinality($1::timestamptz[]) - 1) AS i
),
scope_chargers AS (
    SELECT c.charge_point_id, COALESCE({grouping}, '') AS grp FROM chargers c
    WHERE $2::text[] IS NULL OR c.charge_point_id = ANY($2)
),
capacity AS (
    SELECT c.grp,
           count(DISTINCT (c.charge_point_id, k.evse_id)) FILTER (WHERE k.evse_id > 0) AS evses
    FROM scope_chargers c LEFT JOIN connectors k USING (charge_point_id)
    GROUP BY 1
),
scope_sessions AS (
    SELECT s.id, c.grp, s.status, s.started_at,
           s.ended_at, LEAST(COALESCE(s.ended_at, $3), $3) AS until_at, s.energy_wh,
           s.auth_status, s.meter_start_wh, COALESCE(s.meter_start_at, s.started_at) AS start_at,
           s.meter_stop_wh, s.updated_at
    FROM sessions s JOIN scope_chargers c USING (charge_point_id)
    WHERE s.started_at < $1[cardinality($1::timestamptz[])]
      AND (s.ended_at > $1[1] OR (s.ended_at IS NULL AND $3 > $1[1]))  -- sessions_ended_at
),
rolled AS (
    SELECT s.id, s.grp, a.last_charge_at
    FROM scope_sessions s
    JOIN analytics_sessions a ON a.session_id = s.id AND a.rolled_up_at >= s.updated_at
),
live AS (
    SELECT s.* FROM scope_sessions s WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.id = s.id)
),
{slot_ctes},
all_slots AS (
    SELECT r.grp, sl.slot, sl.energy_wh, sl.charging_s
    FROM rolled r JOIN analytics_session_slots sl ON sl.session_id = r.id
    UNION ALL
    SELECT l.grp, sl.slot, sl.energy_wh, sl.charging_s
    FROM slots sl JOIN live l ON l.id = sl.session_id
),
in_range AS (
    SELECT width_bucket(slot, $1) AS b, grp, slot, energy_wh, charging_s FROM all_slots
    WHERE slot >= $1[1] AND slot < $1[cardinality($1::timestamptz[])]
),
all_last AS (
    SELECT id AS session_id, last_charge_at AS last_at FROM rolled
    UNION ALL
    SELECT session_id, last_at FROM last_charge
),
occupancy AS (
    SELECT i AS b, s.grp,
           sum(date_part('epoch', LEAST(s.until_at, $1[i + 1]) - GREATEST(s.started_at, $1[i])))
               AS occupied_s
    FROM scope_sessions s,
         generate_series(GREATEST(width_bucket(s.started_at, $1), 1),
                         LEAST(width_bucket(s.until_at - interval '1 microsecond', $1),
                               cardinality($1::timestamptz[]) - 1)) AS i
    WHERE s.until_at > s.started_at
    GROUP BY 1, 2
),
charged AS (
    SELECT b, grp, sum(energy_wh) AS energy_wh, sum(charging_s) AS charging_s
    FROM in_range GROUP BY 1, 2
),
started AS (
    SELECT width_bucket(s.started_at, $1) AS b, s.grp, count(*) AS sessions,
           count(*) FILTER (WHERE s.status = 'ended') AS ended,
           count(*) FILTER (WHERE s.status = 'ended' AND (COALESCE(s.energy_wh, 0) <= 0
                            OR (s.auth_status IS NOT NULL AND s.auth_status <> 'Accepted')))
               AS failed,
           COALESCE(sum(date_part('epoch', s.ended_at - s.started_at))
                    FILTER (WHERE s.status = 'ended'), 0) AS duration_s,
           COALESCE(sum(GREATEST(date_part('epoch', s.ended_at - lc.last_at), 0))
                    FILTER (WHERE s.status = 'ended' AND lc.last_at IS NOT NULL), 0) AS idle_s,
           count(lc.last_at) FILTER (WHERE s.status = 'ended') AS idle_sessions
    FROM scope_sessions s LEFT JOIN all_last lc ON lc.session_id = s.id
    WHERE s.started_at >= $1[1]
    GROUP BY 1, 2
),
peaks AS (
    SELECT b, grp, max(wh) * 4 / 1000 AS peak_kw
    FROM (SELECT b, grp, slot, sum(energy_wh) AS wh FROM in_range GROUP BY 1, 2, 3) per_slot
    GROUP BY 1, 2
)
SELECT NULLIF(g.grp, '') AS group_id, b.b_start AS start, b.b_end AS "end", g.evses,
       COALESCE(ch.energy_wh, 0)::float8 / 1000 AS energy_kwh,
       COALESCE(o.occupied_s, 0)::float8 AS occupied_s,
       COALESCE(ch.charging_s, 0)::float8 AS charging_s,
       COALESCE(st.sessions, 0) AS sessions, COALESCE(st.ended, 0) AS ended_sessions,
       COALESCE(st.failed, 0) AS failed_sessions,
       COALESCE(st.duration_s, 0)::float8 AS duration_s,
       COALESCE(st.idle_s, 0)::float8 AS idle_s, COALESCE(st.idle_sessions, 0) AS idle_sessions,
       COALESCE(pk.peak_kw, 0)::float8 AS peak_kw
FROM buckets b CROSS JOIN capacity g
LEFT JOIN occupancy o ON o.b = b.b AND o.grp = g.grp
LEFT JOIN charged ch ON ch.b = b.b AND ch.grp = g.grp
LEFT JOIN started st ON st.b = b.b AND st.grp = g.grp
LEFT JOIN peaks pk ON pk.b = b.b AND pk.grp = g.grp
ORDER BY g.grp, b.b
"""

_DISTRIBUTIONS_SQL = """
SELECT width_bucket(date_part('epoch', s.ended_at - s.started_at)::float8 / 60,
                    $3::float8[]) AS duration_bin,
       width_bucket((s.energy_wh / 1000)::float8, $4::float8[]) AS energy_bin,
       count(*) AS n
FROM sessions s
WHERE s.status = 'ended' AND s.started_at >= $1 AND s.started_at < $2
  AND s.ended_at IS NOT NULL AND s.energy_wh IS NOT NULL
  AND ($5::text[] IS NULL OR s.charge_point_id = ANY($5))
GROUP BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class Selection:
    """What to compute over: bucket edges, chargers (None = all), and the time "now" is."""

    edges: Sequence[datetime]
    charge_point_ids: Sequence[str] | None
    now: datetime


def figures(row: dict[str, Any]) -> dict[str, Any]:
    """A bucket's raw sums as the figures operators read (percentages, minutes, rates)."""
    span_s = (row["end"] - row["start"]).total_seconds()
    capacity_s = span_s * row["evses"]
    ended = row["ended_sessions"]
    idle_n = row["idle_sessions"]
    return {
        "group_id": row["group_id"],
        "start": row["start"],
        "end": row["end"],
        "charging_points": row["evses"],
        "energy_kwh": round(row["energy_kwh"], 3),
        "occupied_pct": _pct(row["occupied_s"], capacity_s),
        "charging_pct": _pct(row["charging_s"], capacity_s),
        "sessions": row["sessions"],
        "ended_sessions": ended,
        "failed_sessions": row["failed_sessions"],
        "failed_rate_pct": _pct(row["failed_sessions"], ended),
        "avg_duration_min": round(row["duration_s"] / ended / 60, 2) if ended else None,
        "avg_idle_after_full_min": round(row["idle_s"] / idle_n / 60, 2) if idle_n else None,
        "peak_kw": round(row["peak_kw"], 3),
    }


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The raw sums of several buckets of one group as one bucket's raw sums."""
    if not rows:
        raise ValueError("nothing to summarise")
    additive = (
        "energy_kwh", "occupied_s", "charging_s", "sessions", "ended_sessions",
        "failed_sessions", "duration_s", "idle_s", "idle_sessions",
    )  # fmt: skip
    total: dict[str, Any] = {key: sum(r[key] for r in rows) for key in additive}
    # Capacity is per bucket (bucket length x EVSEs): the same EVSE count over the
    # whole span gives the same denominator as the buckets' sum.
    total |= {
        "group_id": rows[0]["group_id"],
        "start": rows[0]["start"],
        "end": rows[-1]["end"],
        "evses": rows[0]["evses"],
        "peak_kw": max(r["peak_kw"] for r in rows),
    }
    return total


async def per_bucket(
    conn: Connection, selection: Selection, grouping: Grouping = "all"
) -> list[dict[str, Any]]:
    """Raw sums per bucket, for the whole selection, each charger or each site in it.

    ``group_id`` is the charger's or site's id (None for the whole selection,
    and for the chargers in no site when grouping by site).
    """
    async with conn.transaction():
        # The window over every reading of the range sorts in memory, not on disk.
        await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        rows = await conn.fetch(
            _PER_BUCKET_SQL.format(grouping=GROUPINGS[grouping], slot_ctes=slot_ctes("live")),
            list(selection.edges),
            None if selection.charge_point_ids is None else list(selection.charge_point_ids),
            selection.now,
        )
    return [dict(r) for r in rows]


async def has_sites(conn: Executor) -> bool:
    """Whether smart charging's sites exist in this database."""
    return bool(await conn.fetchval("SELECT to_regclass('sc_charger_sites') IS NOT NULL"))


async def chargers_of_site(conn: Executor, site_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT charge_point_id FROM sc_charger_sites WHERE site_id = $1 ORDER BY 1", site_id
    )
    return [r["charge_point_id"] for r in rows]


async def distributions(conn: Executor, selection: Selection) -> dict[str, Any]:
    """Histograms of ended sessions' duration (minutes) and energy (kWh) started in range."""
    rows = await conn.fetch(
        _DISTRIBUTIONS_SQL,
        selection.edges[0],
        selection.edges[-1],
        [float(e) for e in DURATION_EDGES_MIN],
        [float(e) for e in ENERGY_EDGES_KWH],
        None if selection.charge_point_ids is None else list(selection.charge_point_ids),
    )
    return {
        "duration_min": histogram(DURATION_EDGES_MIN, ((r["duration_bin"], r["n"]) for r in rows)),
        "energy_kwh": histogram(ENERGY_EDGES_KWH, ((r["energy_bin"], r["n"]) for r in rows)),
    }


def histogram(edges: Sequence[float], counts: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    """Bins ``[edge_i, edge_i+1)`` (the last open-ended) from width_bucket's (bin, count) pairs.

    Bin 0 (below the first edge: a negative duration or energy, e.g. a meter
    reset) is reported as its own ``below`` bin so nothing is silently dropped.
    """
    totals = [0] * (len(edges) + 1)
    for index, n in counts:
        totals[index] += n
    bins = [
        {"from": edges[i - 1], "to": edges[i] if i < len(edges) else None, "sessions": totals[i]}
        for i in range(1, len(edges) + 1)
    ]
    if totals[0]:
        bins.insert(0, {"from": None, "to": edges[0], "sessions": totals[0]})
    return bins


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (all with the same keys) as CSV with a header line; times in ISO 8601."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
        )
    return out.getvalue()
