"""The ``nodes`` table: every csms on the database, with a lease it renews.

All lease arithmetic uses the database's clock (``now()``), so nodes whose
clocks disagree still agree on which leases have expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: str
    host: str
    pid: int
    version: str
    pid_scope: str  # nodes with the same scope see each other's processes (see cluster.nodes)


@dataclass(frozen=True, slots=True)
class DeadNode:
    """A node taken for dead, its row locked by the transaction that reaps it."""

    node_id: str
    renewed_at: datetime  # the last time it proved it was alive
    lease_was_valid: bool  # still leased: only a same-id restart or a dead pid says dead


@dataclass(frozen=True, slots=True)
class ReapedCharger:
    charge_point_id: str
    node_id: str | None
    disconnected_at: datetime


async def register(conn: Executor, node: NodeIdentity, lease_s: float) -> None:
    """Insert this node's row, or take over the row a previous incarnation left."""
    await conn.execute(
        """
        INSERT INTO nodes (node_id, host, pid, version, pid_scope, lease_expires_at)
        VALUES ($1, $2, $3, $4, $6, now() + make_interval(secs => $5))
        ON CONFLICT (node_id) DO UPDATE
        SET host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version,
            pid_scope = EXCLUDED.pid_scope,
            api_url = NULL, ocpp_url = NULL, draining = false, sockets_open = 0,
            started_at = now(), renewed_at = now(),
            lease_expires_at = EXCLUDED.lease_expires_at
        """,
        node.node_id,
        node.host,
        node.pid,
        node.version,
        lease_s,
        node.pid_scope,
    )


async def renew(
    conn: Executor,
    node_id: str,
    lease_s: float,
    sockets_open: int,
    api_url: str | None,
    ocpp_url: str | None,
) -> bool:
    """Extend the lease; False when the row is gone (another node reaped this one)."""
    renewed = await conn.fetchval(
        """
        UPDATE nodes SET renewed_at = now(), lease_expires_at = now() + make_interval(secs => $2),
               sockets_open = $3, api_url = COALESCE($4, api_url),
               ocpp_url = COALESCE($5, ocpp_url)
        WHERE node_id = $1
        RETURNING true
        """,
        node_id,
        lease_s,
        sockets_open,
        api_url,
        ocpp_url,
    )
    return bool(renewed)


async def set_draining(conn: Executor, node_id: str, draining: bool) -> None:
    await conn.execute("UPDATE nodes SET draining = $2 WHERE node_id = $1", node_id, draining)


async def leave(conn: Executor, node_id: str) -> None:
    await conn.execute("DELETE FROM nodes WHERE node_id = $1", node_id)


async def lock_dead(
    conn: Executor, me: str, same_id: bool, dead_pids: tuple[str, list[int]] | None
) -> list[DeadNode]:
    """Lock the rows of nodes taken for dead; rows another reaper holds are skipped.

    Dead: a lease that has expired; with ``same_id``, this node's own row (a
    previous incarnation that did not stop cleanly); with ``dead_pids`` (a pid
    scope and process ids), nodes of that scope whose process no longer exists.
    """
    scope, pids = dead_pids or ("", [])
    rows = await conn.fetch(
        """
        SELECT node_id, renewed_at, lease_expires_at > now() AS leased FROM nodes
        WHERE (node_id <> $1 AND lease_expires_at < now())
           OR ($2 AND node_id = $1)
           OR (node_id <> $1 AND $3 <> '' AND pid_scope = $3 AND pid = ANY($4::int[]))
        FOR UPDATE SKIP LOCKED
        """,
        me,
        same_id,
        scope,
        pids,
    )
    return [DeadNode(r["node_id"], r["renewed_at"], r["leased"]) for r in rows]


async def pids_in_scope(conn: Executor, me: str, pid_scope: str) -> list[int]:
    """Process ids of the other nodes whose processes this one can see."""
    rows = await conn.fetch(
        "SELECT pid FROM nodes WHERE pid_scope = $1 AND node_id <> $2", pid_scope, me
    )
    return [int(r["pid"]) for r in rows]


async def mark_chargers_offline(conn: Executor, dead: list[DeadNode]) -> list[ReapedCharger]:
    """Mark offline every charger a dead node held, and every orphan.

    An orphan is a charger marked connected through no live node (its node row is
    gone, or it predates presence). Rows are locked with SKIP LOCKED, so when two
    nodes reap at once each charger is marked offline by exactly one of them. The
    downtime starts when the charger was last known to be there: its last message
    or the node's last renewal, whichever is later.
    """
    rows = await conn.fetch(
        """
        WITH dead AS (
            SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS d(node_id, renewed_at)
        ), victims AS (
            SELECT c.charge_point_id, d.renewed_at FROM chargers c
            LEFT JOIN dead d ON d.node_id = c.node_id
            WHERE c.connected
              AND (d.node_id IS NOT NULL OR c.node_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = c.node_id))
            FOR UPDATE OF c SKIP LOCKED
        )
        UPDATE chargers c
        SET connected = false,
            disconnected_at = least(now(), greatest(c.connected_at, c.last_seen_at,
                                                    v.renewed_at)),
            updated_at = now()
        FROM victims v
        WHERE c.charge_point_id = v.charge_point_id AND c.connected
        RETURNING c.charge_point_id, c.node_id, c.disconnected_at
        """,
        [d.node_id for d in dead],
        [d.renewed_at for d in dead],
    )
    return [ReapedCharger(r["charge_point_id"], r["node_id"], r["disconnected_at"]) for r in rows]


async def forget(conn: Executor, node_ids: list[str]) -> None:
    await conn.execute("DELETE FROM nodes WHERE node_id = ANY($1::text[])", node_ids)


async def live_nodes(conn: Executor) -> list[dict[str, Any]]:
    """Every node whose lease has not expired, with the chargers it holds."""
    rows = await conn.fetch(
        """
        SELECT n.node_id, n.host, n.pid, n.version, n.api_url, n.ocpp_url, n.draining,
               n.started_at, n.renewed_at, n.lease_expires_at,
               extract(epoch FROM now() - n.renewed_at)::float8 AS lease_age_s,
               (SELECT count(*) FROM chargers c
                WHERE c.connected AND c.node_id = n.node_id)::int AS chargers_connected,
               n.sockets_open
        FROM nodes n
        WHERE n.lease_expires_at >= now()
        ORDER BY n.node_id
        """
    )
    return [dict(r) for r in rows]
