"""Read queries behind the operator API: chargers and sessions as JSON-ready dicts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from csms.storage import Executor, interop
from csms.storage.where import Where, fetch_planned_for_values, nearest_ids_below

_CHARGER_COLUMNS = """
    c.charge_point_id, c.registration, c.protocol, c.vendor, c.model, c.serial_number,
    c.firmware_version, c.firmware_status, c.connected, c.connected_at, c.disconnected_at,
    CASE WHEN c.connected THEN c.node_id END AS node_id, c.connection_generation,
    c.last_seen_at, c.last_boot_at, c.last_boot_reason, c.created_at,
    c.security_profile, c.password_hash IS NOT NULL AS has_password,
    COALESCE((
        SELECT json_agg(json_build_object(
            'evse_id', k.evse_id, 'connector_id', k.connector_id, 'status', k.status,
            'detail', k.detail, 'error_code', k.error_code, 'status_at', k.status_at)
            ORDER BY k.evse_id, k.connector_id)
        FROM connectors k WHERE k.charge_point_id = c.charge_point_id
    ), '[]') AS connectors
"""

_SESSION_COLUMNS = """
    id, charge_point_id, protocol, transaction_id, evse_id, connector_id, id_token,
    auth_status, status, started_at, ended_at, meter_start_wh, meter_stop_wh, meter_last_wh,
    energy_wh, stop_reason, start_unknown, charging_state, last_seq_no
"""


def _charger(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["connectors"] = json.loads(data["connectors"])
    return data


async def list_chargers(
    conn: Executor,
    *,
    connected: bool | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_CHARGER_COLUMNS} FROM chargers c
        WHERE ($1::bool IS NULL OR c.connected = $1)
          AND ($2::text IS NULL OR c.charge_point_id ILIKE '%' || $2 || '%'
               OR c.vendor ILIKE '%' || $2 || '%' OR c.model ILIKE '%' || $2 || '%')
        ORDER BY c.charge_point_id LIMIT $3 OFFSET $4
        """,
        connected,
        search,
        limit,
        offset,
    )
    return [_charger(r) for r in rows]


async def get_charger(conn: Executor, charge_point_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_CHARGER_COLUMNS} FROM chargers c WHERE c.charge_point_id = $1", charge_point_id
    )
    if row is None:
        return None
    charger = _charger(row)
    active = await conn.fetch(
        f"""
        SELECT {_SESSION_COLUMNS} FROM sessions
        WHERE charge_point_id = $1 AND status = 'active' ORDER BY id
        """,
        charge_point_id,
    )
    charger["active_sessions"] = [dict(r) for r in active]
    # What the charger does not take, and the rate units it accepts (csms.interop).
    charger.update(await interop.describe(conn, charge_point_id))
    return charger


async def list_sessions(
    conn: Executor,
    *,
    charge_point_id: str | None = None,
    id_token: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; page with ``before_id`` = the last id of the previous page."""
    timed = since is not None or until is not None
    # Open sessions by start time ("open since before yesterday"): the open ones are few
    # (one a connector at most, partial indexes sessions_active*); read them, filter by
    # start and sort them. Else the planner walks ids newest first (every session, when
    # fewer than a page are open in the range) or adds the start-time index (every
    # session of the range): the start is written as an expression no index has.
    open_by_start = status == "active" and timed
    started = "(started_at + interval '0 s')" if open_by_start else "started_at"
    # A charger's page (no token; open sessions have their partial index) as a range of
    # sessions_by_charger (charger, id), ordered by it: with "= $1" the planner may walk
    # ids newest first instead, expecting a busy charger's sessions to be spread evenly
    # over time -- for one whose history is mostly old it read nearly every session
    # (as alerts_store._page_key explains for the alerts of a rule).
    by_charger = charge_point_id is not None and id_token is None and status != "active"
    where = Where()  # only the filters given: each combination planned for itself
    if by_charger:
        where.add("charge_point_id >= {} AND charge_point_id <= {}", charge_point_id)
    else:
        where.add("charge_point_id = {}", charge_point_id)
    where.add("lower(id_token) = lower({}::text)", id_token)
    where.add(f"{started} >= {{}}", since)
    where.add(f"{started} < {{}}", until)
    if open_by_start:
        where.always("status = 'active'")  # literal, for the partial indexes
    else:
        where.add("status = {}", status)
    if by_charger and before_id is not None:
        # The cursor as a position in sessions_by_charger, where the page starts; as
        # "id < $n" the planner may read every session below it by the primary key and
        # sort them (the ids below an old cursor: a big part of the table).
        where.always(
            f"(charge_point_id, id) < ({where.param(charge_point_id)}, {where.param(before_id)})"
        )
    else:
        where.add("id < {}", before_id)
    query = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {where.sql}"
    if open_by_start:
        query = f"WITH open AS MATERIALIZED ({query}) SELECT * FROM open"
    elif timed and charge_point_id is None and id_token is None:
        # Bounded by start time only: walking ids newest first reads every session after
        # the range (an old `until`), or the whole table when the range holds less than a
        # page; started_at's B-tree, every session of the range. The ids nearest below the
        # cursor among the range (GiST sessions_started_id) are the same rows in the same
        # order -- ids are unique and all below the cursor -- read as a page. Planned for
        # the values: with them the planner takes the B-tree for a range of a few rows,
        # but a generic plan, guessing every range to be narrow, would for a wide one too.
        order = nearest_ids_below(where, before_id)
        rows = await fetch_planned_for_values(
            conn, f"{query} {order} LIMIT {where.param(limit)}", *where.args
        )
        return [dict(r) for r in rows]
    order = "ORDER BY charge_point_id DESC, id DESC" if by_charger else "ORDER BY id DESC"
    rows = await conn.fetch(f"{query} {order} LIMIT {where.param(limit)}", *where.args)
    return [dict(r) for r in rows]


async def get_session(
    conn: Executor, session_id: int, sample_limit: int = 10_000
) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = $1", session_id)
    if row is None:
        return None
    samples = await conn.fetch(
        """
        SELECT sampled_at, measurand, phase, location, context, value, unit
        FROM meter_samples WHERE session_id = $1 ORDER BY sampled_at, id LIMIT $2
        """,
        session_id,
        sample_limit,
    )
    session = dict(row)
    session["meter_samples"] = [dict(s) for s in samples]
    return session


async def set_registration(conn: Executor, charge_point_id: str, registration: str) -> None:
    await conn.execute(
        """
        INSERT INTO chargers (charge_point_id, registration) VALUES ($1, $2)
        ON CONFLICT (charge_point_id) DO UPDATE
        SET registration = EXCLUDED.registration, updated_at = now()
        """,
        charge_point_id,
        registration,
    )


async def delete_charger(conn: Executor, charge_point_id: str) -> str:
    """Delete a charger with no sessions; say 'deleted', 'missing' or 'has_sessions'."""
    sessions = await conn.fetchval(
        "SELECT count(*) FROM sessions WHERE charge_point_id = $1", charge_point_id
    )
    if sessions:
        return "has_sessions"
    status = await conn.execute("DELETE FROM chargers WHERE charge_point_id = $1", charge_point_id)
    return "deleted" if status.endswith(" 1") else "missing"
