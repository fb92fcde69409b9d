"""What the fault-detection rules read from other tables than the alerts'.

The charger profiles that pick each charger's thresholds (model, smart-charging
site and rating), the connected chargers gone silent (heartbeat gaps), and the
smart-charging limits set before the engine's feed started.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.monitoring.rules_engine import ChargerProfile
from csms.storage import Executor


async def charger_profiles(conn: Executor) -> dict[str, ChargerProfile]:
    """Model (from BootNotification) and smart-charging site and rating of every charger."""
    records = await conn.fetch(
        """
        SELECT c.charge_point_id, c.model, s.site_id,
               COALESCE(s.connector_max_current_a, s.max_current_a) AS max_current_a, s.phases
        FROM chargers c LEFT JOIN sc_charger_sites s USING (charge_point_id)
        """
    )
    return {
        r["charge_point_id"]: ChargerProfile(
            r["model"], r["site_id"], r["max_current_a"], r["phases"]
        )
        for r in records
    }


async def silent_connected(conn: Executor, now: datetime, interval_s: float) -> dict[str, datetime]:
    """Connected chargers that said nothing for ``interval_s`` seconds: when they last spoke."""
    records = await conn.fetch(
        """
        SELECT charge_point_id, GREATEST(last_seen_at, connected_at) AS seen
        FROM chargers
        WHERE connected
          AND GREATEST(last_seen_at, connected_at)
              < $1::timestamptz - make_interval(secs => $2::float8)
        """,
        now,
        interval_s,
    )
    return {r["charge_point_id"]: r["seen"] for r in records}


LIMITS_PAGE = 10_000


async def charging_limits_after(
    conn: Executor, after: tuple[int, int]
) -> list[tuple[str, dict[str, Any], tuple[int, int]]]:
    """``charging_limit_set`` events (smart charging's profiles) after feed position ``after``.

    In commit order and only below the oldest running transaction, as the event
    feed reads (csms/cluster/feed.py): an id order would skip a profile whose
    transaction commits after a newer one. Rows older than the feed columns
    count as position (0, id).
    """
    records = await conn.fetch(
        """
        SELECT id, coalesce(xact_id, '0'::xid8) AS xact_id, charge_point_id, payload
        FROM events
        WHERE type = 'charging_limit_set'
          AND coalesce(xact_id, '0'::xid8) < pg_snapshot_xmin(pg_current_snapshot())
          AND (coalesce(xact_id, '0'::xid8), id) > ($1::xid8, $2::bigint)
        ORDER BY 2, id LIMIT $3
        """,
        after[0],
        after[1],
        LIMITS_PAGE,
    )
    return [
        (r["charge_point_id"], json.loads(r["payload"]), (int(r["xact_id"]), int(r["id"])))
        for r in records
    ]
