"""The planner's one-statement commit (smart_charging.planner_state.commit), on Postgres."""

from __future__ import annotations

import asyncpg

from smart_charging import planner_state, store
from smart_charging.planner_state import Fence, Told


async def _state(conn: asyncpg.Connection) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM sc_site_planner_state WHERE site_id = 's'")
    assert row is not None
    return row


async def _rows(conn: asyncpg.Connection) -> dict[tuple[str, int], tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT charge_point_id, evse_id, transaction_id, limit_a, pending_a, assumed_a, phases "
        "FROM sc_session_limits"
    )
    return {(r[0], r[1]): tuple(r)[2:] for r in rows}


async def _lease(conn: asyncpg.Connection, token: int) -> None:
    await conn.execute(
        "INSERT INTO cluster_leases (name, holder, token) "
        "VALUES ('smart-charging:site:s', 'n', $1) "
        "ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token",
        token,
    )


async def test_commit_writes_rows_site_state_and_forgets_ended_sessions(
    database_conn: asyncpg.Connection,
) -> None:
    conn = database_conn
    await store.create_site(conn, "s", {"name": "S", "phase_limit_a": 32.0})
    await _lease(conn, 7)
    fence = Fence("smart-charging:site:s", 7)
    first = [Told("A", 1, "t1", 3, 16.0, 10.0), Told("B", 1, "t2", 1, None, 6.0, 32.0)]
    assert await planner_state.commit(conn, "s", fence, "n", first, decreased=True)
    assert await _rows(conn) == {
        ("A", 1): ("t1", 16.0, 10.0, None, 3),
        ("B", 1): ("t2", None, 6.0, 32.0, 1),
    }
    state = await _state(conn)
    assert state["last_decrease_at"] is not None and state["view"] is None
    assert state["planner"] == "n" and state["lease_token"] == 7
    decreased_at = state["last_decrease_at"]

    # A's session ended; B's EVSE has a new session (its row rewritten, not deleted); C new.
    told = [Told("B", 1, "t3", 3, 8.0), Told("C", 2, "t4", 3, 0.0)]
    active = [("B", 1, "t3"), ("C", 2, "t4")]
    view: dict[str, list[str]] = {"sessions": []}
    assert await planner_state.commit(conn, "s", fence, "n", told, active=active, view=view)
    assert await _rows(conn) == {
        ("B", 1): ("t3", 8.0, None, None, 3),
        ("C", 2): ("t4", 0.0, None, None, 3),
    }
    state = await _state(conn)
    assert state["last_decrease_at"] == decreased_at  # no decrease this time: kept
    assert await planner_state.load_view(conn, "s") == {"sessions": [], "planner": "n"}

    # Nothing told, the same sessions active: nothing deleted.
    assert await planner_state.commit(conn, "s", fence, "n", [], active=active, durable=False)
    assert set(await _rows(conn)) == {("B", 1), ("C", 2)}


async def test_commit_under_a_lost_lease_writes_nothing(database_conn: asyncpg.Connection) -> None:
    conn = database_conn
    await store.create_site(conn, "s", {"name": "S", "phase_limit_a": 32.0})
    await _lease(conn, 8)  # another node took the site over: token 8
    stale = Fence("smart-charging:site:s", 7)
    told = [Told("A", 1, "t1", 3, 16.0, 10.0)]
    ok = await planner_state.commit(
        conn, "s", stale, "n", told, active=[], decreased=True, view={"x": 1}
    )
    assert not ok
    assert await _rows(conn) == {}
    assert await conn.fetchval("SELECT count(*) FROM sc_site_planner_state") == 0
    # No lease row at all (released): not current either.
    await conn.execute("DELETE FROM cluster_leases")
    assert not await planner_state.commit(conn, "s", stale, "n", told)
    # A single node without leases writes unfenced.
    assert await planner_state.commit(conn, "s", None, "n", told)
    assert set(await _rows(conn)) == {("A", 1)}
