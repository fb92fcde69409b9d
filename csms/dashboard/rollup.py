"""Session readings as quarter-hour slots: computed live, and rolled up for ended sessions.

A session's energy register readings (its start reading, every register
sample, its stop reading) become steps between consecutive readings; a step
whose register went up is time spent charging, and its energy is spread
evenly over it. Steps are cut at UTC quarter hours into *slots* (energy and
charging seconds per session and quarter hour). Analytics add slots into
their buckets, so the same SQL serves ended sessions rolled up in
``analytics_session_slots`` (migration 0009) and sessions still read from the
raw samples (active ones, and ended ones not rolled up yet).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from csms.dashboard.queries import REGISTER

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_LOCK_KEY = 0x43534D53_44415348  # one rollup at a time per database ("CSMSDASH")


def slot_ctes(target: str) -> str:
    """CTEs ``readings``, ``steps``, ``charging``, ``slots`` and ``last_charge`` over ``target``.

    ``target`` is a CTE with ``id, start_at, meter_start_wh, ended_at, meter_stop_wh``.

    A target session's samples are read through its index (``meter_samples_session``)
    whatever the statistics say: ``OFFSET 0`` keeps the per-session subquery from being
    flattened into a join. As a join, a planner without statistics of the samples
    stored lately (a database's first minutes, a burst since the last ANALYZE) counted
    one matching sample and nested a scan of the whole table under the targets: 1.7 s
    of Postgres CPU for a rollup of 500 sessions over 310,000 samples, which ran right
    after a busy minute, beside the chargers' writes (docs/profiling.md).
    """
    return f"""
readings AS (
    SELECT t.id AS session_id, m.at, m.wh
    FROM {target} t, LATERAL (
        SELECT m.sampled_at AS at, m.value AS wh FROM meter_samples m
        WHERE m.session_id = t.id AND m.measurand = '{REGISTER}' AND m.phase IS NULL
          AND (m.location IS NULL OR m.location = 'Outlet')
        OFFSET 0
    ) m
    UNION ALL
    SELECT id, start_at, meter_start_wh FROM {target}
    WHERE meter_start_wh IS NOT NULL AND start_at IS NOT NULL
    UNION ALL
    SELECT id, ended_at, meter_stop_wh FROM {target}
    WHERE meter_stop_wh IS NOT NULL AND ended_at IS NOT NULL
),
steps AS (
    SELECT session_id, lag(at) OVER w AS prev_at, at, wh - lag(wh) OVER w AS delta_wh
    FROM readings WINDOW w AS (PARTITION BY session_id ORDER BY at, wh)
),
charging AS (
    SELECT session_id, prev_at, at, delta_wh, date_part('epoch', at - prev_at) AS step_s
    FROM steps WHERE delta_wh > 0 AND at > prev_at
),
slots AS (
    SELECT c.session_id, slot,
           sum(c.delta_wh * date_part('epoch', LEAST(c.at, slot + interval '15 minutes')
               - GREATEST(c.prev_at, slot)) / c.step_s) AS energy_wh,
           sum(date_part('epoch', LEAST(c.at, slot + interval '15 minutes')
               - GREATEST(c.prev_at, slot))) AS charging_s
    FROM charging c,
         generate_series(date_bin('15 minutes', c.prev_at, TIMESTAMPTZ '2000-01-01 00:00Z'),
                         c.at - interval '1 microsecond', interval '15 minutes') AS slot
    GROUP BY 1, 2
),
last_charge AS (SELECT session_id, max(at) AS last_at FROM charging GROUP BY 1)
"""


# A session is due when it ended and was changed (``updated_at``) after its rollup, or
# never rolled up. Rollups go in ``updated_at`` order, so every session changed before
# the newest rollup's ``updated_at`` was seen already -- except a change whose
# transaction began earlier and committed later: ROLLUP_MARGIN covers those. Reading
# only sessions changed since then (BRIN ``sessions_updated_at``, migration 0023) keeps
# a round's cost to the sessions changed lately, not the whole history; the rollup of
# each candidate is looked up one by one (a correlated subquery, never a join that
# reads every rollup ever made).
ROLLUP_MARGIN = "1 hour"

_ROLLED_UP_UNTIL_SQL = f"""
SELECT max(rolled_up_at) - interval '{ROLLUP_MARGIN}' FROM analytics_sessions
"""

_PENDING_SQL = """
SELECT s.id, s.updated_at FROM sessions s
WHERE s.status = 'ended' AND s.updated_at >= $2
  AND coalesce((SELECT a.rolled_up_at FROM analytics_sessions a WHERE a.session_id = s.id),
               '-infinity') < s.updated_at
ORDER BY s.updated_at, s.id LIMIT $1
"""

_ROLL_UP_SQL = f"""
WITH target AS (
    SELECT s.id, COALESCE(s.meter_start_at, s.started_at) AS start_at, s.meter_start_wh,
           s.ended_at, s.meter_stop_wh
    FROM sessions s WHERE s.id = ANY($1::bigint[])
),
{slot_ctes("target")},
stored AS (
    INSERT INTO analytics_session_slots (session_id, slot, energy_wh, charging_s)
    SELECT session_id, slot, energy_wh, charging_s FROM slots
)
INSERT INTO analytics_sessions (session_id, last_charge_at, rolled_up_at)
SELECT t.id, lc.last_at, u.updated_at
FROM target t
JOIN unnest($1::bigint[], $2::timestamptz[]) AS u(id, updated_at) ON u.id = t.id
LEFT JOIN last_charge lc ON lc.session_id = t.id
ON CONFLICT (session_id) DO UPDATE
SET last_charge_at = EXCLUDED.last_charge_at, rolled_up_at = EXCLUDED.rolled_up_at
"""


async def roll_up(conn: Connection, batch: int = 500) -> int:
    """Roll up the next ``batch`` ended sessions not rolled up (or changed since); say how many.

    Returns 0 when there is nothing to do or another process holds the rollup.
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
            return 0
        since = await conn.fetchval(_ROLLED_UP_UNTIL_SQL)
        pending = await conn.fetch(_PENDING_SQL, batch, since or datetime.min.replace(tzinfo=UTC))
        if not pending:
            return 0
        ids = [r["id"] for r in pending]
        # As of the session's updated_at read above: a reading stored meanwhile moves
        # updated_at past it, and the session is rolled up again next time.
        await conn.execute(
            "DELETE FROM analytics_session_slots WHERE session_id = ANY($1::bigint[])", ids
        )
        await conn.execute(_ROLL_UP_SQL, ids, [r["updated_at"] for r in pending])
    return len(pending)
