"""SQL for connectivity history: downtime intervals and connector-status intervals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from csms.monitoring.availability import Interval, StatusInterval
from csms.storage import Executor


async def open_downtime(conn: Executor, charge_point_id: str, at: datetime, reason: str) -> None:
    """Start a downtime interval unless one is already open."""
    await conn.execute(
        """
        INSERT INTO charger_downtime (charge_point_id, started_at, reason)
        SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM chargers WHERE charge_point_id = $1)
        ON CONFLICT (charge_point_id) WHERE ended_at IS NULL DO NOTHING
        """,
        charge_point_id,
        at,
        reason,
    )


async def close_downtime(conn: Executor, charge_point_id: str, at: datetime) -> None:
    await conn.execute(
        """
        UPDATE charger_downtime SET ended_at = greatest($2, started_at)
        WHERE charge_point_id = $1 AND ended_at IS NULL
        """,
        charge_point_id,
        at,
    )


async def open_downtime_for_all_offline(
    conn: Executor, connected: set[str], presumed_dead_s: float
) -> int:
    """At start-up: every charger not connected here and not already down is down.

    The interval starts when the charger was last heard of (a crash of the
    previous CSMS process recorded no disconnect). A charger still marked
    connected and heard from within ``presumed_dead_s`` may be connected to
    another CSMS process and is left alone. Returns how many intervals opened.
    """
    status = await conn.execute(
        """
        INSERT INTO charger_downtime (charge_point_id, started_at, reason)
        SELECT charge_point_id,
               coalesce(CASE WHEN connected THEN last_seen_at END,
                        disconnected_at, last_seen_at, connected_at, created_at),
               'csms_down'
        FROM chargers c
        WHERE NOT (charge_point_id = ANY($1::text[]))
          AND (NOT connected OR last_seen_at IS NULL
               OR last_seen_at < now() - make_interval(secs => $2))
          AND NOT EXISTS (SELECT 1 FROM charger_downtime d
                          WHERE d.charge_point_id = c.charge_point_id AND d.ended_at IS NULL)
        """,
        sorted(connected),
        presumed_dead_s,
    )
    return int(status.split()[-1])


# Close the connector's open status interval and open one for the status (if it changed).
# One statement, atomic on its own (no BEGIN/COMMIT of its caller's, one round trip
# instead of five: docs/profiling.md, "The cost below saturation"). The insert reads
# the ``closed`` count, so the update has run before it and the unique index of open
# intervals never sees two. A charger's clock may step back: the new interval never
# starts before the one it follows.
_RECORD_STATUS = """
    WITH current AS (
        SELECT id, status, started_at FROM connector_status_history
        WHERE charge_point_id = $1 AND evse_id = $2 AND connector_id = $3
          AND ended_at IS NULL
        FOR UPDATE
    ), closed AS (
        UPDATE connector_status_history h SET ended_at = greatest($5, c.started_at)
        FROM current c WHERE h.id = c.id AND c.status <> $4
        RETURNING h.id
    )
    INSERT INTO connector_status_history
        (charge_point_id, evse_id, connector_id, status, started_at)
    SELECT $1, $2, $3, $4, greatest($5, (SELECT started_at FROM current))
    FROM (SELECT count(*) AS n FROM closed) AS done
    WHERE NOT EXISTS (SELECT 1 FROM current WHERE status = $4)
      AND EXISTS (SELECT 1 FROM chargers WHERE charge_point_id = $1)
"""

StatusRow = tuple[str, int, int, str, datetime]
"""A connector's new status: charge point id, EVSE id, connector id, status, when."""


async def record_status(
    conn: Executor,
    charge_point_id: str,
    evse_id: int,
    connector_id: int,
    status: str,
    at: datetime,
) -> None:
    """Close the connector's open status interval and open one for ``status`` (if it changed)."""
    await conn.execute(_RECORD_STATUS, charge_point_id, evse_id, connector_id, status, at)


async def record_statuses(
    conn: asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record],
    rows: Sequence[StatusRow],
) -> None:
    """:func:`record_status` for each row, in order, in one transaction and one round trip
    (asyncpg pipelines ``executemany``): all of them are stored, or none."""
    async with conn.transaction():
        await conn.executemany(_RECORD_STATUS, rows)


async def known_since(conn: Executor, charge_point_ids: list[str] | None) -> dict[str, datetime]:
    """When each charger (all of them for None) was first registered."""
    rows = await conn.fetch(
        """
        SELECT charge_point_id, created_at FROM chargers
        WHERE $1::text[] IS NULL OR charge_point_id = ANY($1::text[])
        ORDER BY charge_point_id
        """,
        charge_point_ids,
    )
    return {row["charge_point_id"]: row["created_at"] for row in rows}


async def downtime_in(
    conn: Executor, charge_point_ids: list[str], start: datetime, end: datetime
) -> dict[str, list[Interval]]:
    rows = await conn.fetch(
        """
        SELECT charge_point_id, started_at, ended_at FROM charger_downtime
        WHERE charge_point_id = ANY($1::text[]) AND started_at < $3
          AND (ended_at IS NULL OR ended_at > $2)
        ORDER BY started_at
        """,
        charge_point_ids,
        start,
        end,
    )
    out: dict[str, list[Interval]] = {}
    for row in rows:
        out.setdefault(row["charge_point_id"], []).append(
            Interval(row["started_at"], row["ended_at"])
        )
    return out


async def statuses_in(
    conn: Executor, charge_point_ids: list[str], start: datetime, end: datetime
) -> dict[str, list[StatusInterval]]:
    rows = await conn.fetch(
        """
        SELECT charge_point_id, evse_id, connector_id, status, started_at, ended_at
        FROM connector_status_history
        WHERE charge_point_id = ANY($1::text[]) AND started_at < $3
          AND (ended_at IS NULL OR ended_at > $2)
          AND evse_id > 0
        ORDER BY started_at
        """,
        charge_point_ids,
        start,
        end,
    )
    out: dict[str, list[StatusInterval]] = {}
    for row in rows:
        out.setdefault(row["charge_point_id"], []).append(
            StatusInterval(
                row["evse_id"],
                row["connector_id"],
                row["status"],
                row["started_at"],
                row["ended_at"],
            )
        )
    return out
