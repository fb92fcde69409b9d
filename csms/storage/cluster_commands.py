"""The ``cluster_commands`` table: commands forwarded to the node holding a charger.

A row moves ``pending`` -> ``sending`` (claimed by the target, at most once,
never after its deadline) -> an outcome; or ``pending`` -> ``expired`` when
the caller gave up before any node claimed it. Every transition is one
conditional UPDATE, so two nodes racing for a row cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass

from csms.storage import Executor

DONE_STATES = frozenset(
    {
        "answered",
        "call_error",
        "ocpp_error",
        "not_connected",
        "wrong_protocol",
        "closed",
        "timeout",
        "failed",
        "expired",
    }
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    caller_node: str
    charge_point_id: str
    generation: int
    payload: str  # JSON (csms.cluster.codec)
    seconds_left: float  # until the deadline, by the database's clock


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    response: str | None  # JSON (csms.cluster.codec) when answered
    error: str | None  # JSON object


# Inserting a command and storing its outcome commit without waiting for the WAL
# flush (set_config(..., true) lasts to the end of the statement's own transaction):
# after a database crash the caller times out, as if the command were lost. Never
# for the claim: a claim lost in a crash would let a command be delivered twice.
_NO_FLUSH = "SELECT set_config('synchronous_commit', 'off', true)"


async def insert(
    conn: Executor,
    *,
    caller_node: str,
    target_node: str,
    charge_point_id: str,
    generation: int,
    payload: str,
    timeout_s: float,
    notify_channel: str,
) -> int:
    """Add a pending command and NOTIFY ``notify_channel`` with ``c:<id>``: one statement."""
    value = await conn.fetchval(
        f"""
        WITH no_flush AS ({_NO_FLUSH}), added AS (
            INSERT INTO cluster_commands (caller_node, target_node, charge_point_id,
                                          generation, payload, deadline)
            VALUES ($1, $2, $3, $4, $5::jsonb, now() + make_interval(secs => $6))
            RETURNING id
        )
        SELECT added.id FROM added, no_flush, LATERAL pg_notify($7, 'c:' || added.id)
        """,
        caller_node,
        target_node,
        charge_point_id,
        generation,
        payload,
        timeout_s,
        notify_channel,
    )
    return int(value)


async def claim(conn: Executor, command_id: int, target_node: str) -> Claimed | None:
    """Take a pending command for delivery; None if it is not pending, not ours or late."""
    row = await conn.fetchrow(
        """
        UPDATE cluster_commands SET state = 'sending', claimed_at = now()
        WHERE id = $1 AND target_node = $2 AND state = 'pending' AND deadline > now()
        RETURNING id, caller_node, charge_point_id, generation, payload::text AS payload,
                  extract(epoch FROM deadline - now())::float8 AS seconds_left
        """,
        command_id,
        target_node,
    )
    return None if row is None else Claimed(**dict(row))


async def pending_for(conn: Executor, target_node: str) -> list[int]:
    """Commands waiting for this node (their notification may have been missed)."""
    rows = await conn.fetch(
        """
        SELECT id FROM cluster_commands
        WHERE target_node = $1 AND state = 'pending' AND deadline > now() ORDER BY id
        """,
        target_node,
    )
    return [int(r["id"]) for r in rows]


async def finish(
    conn: Executor, command_id: int, result: Outcome, notify_channel: str, notice: str
) -> bool:
    """Store a claimed command's outcome and NOTIFY ``notice``: one statement.

    False (nothing stored, nobody notified) if the command was not being sent.
    """
    value = await conn.fetchval(
        f"""
        WITH no_flush AS ({_NO_FLUSH}), done AS (
            UPDATE cluster_commands
            SET state = $2, response = $3::jsonb, error = $4::jsonb, finished_at = now()
            WHERE id = $1 AND state = 'sending'
            RETURNING id
        )
        SELECT true FROM done, no_flush, LATERAL pg_notify($5, $6)
        """,
        command_id,
        result.state,
        result.response,
        result.error,
        notify_channel,
        notice,
    )
    return bool(value)


async def abandon(conn: Executor, target_nodes: list[str]) -> list[tuple[int, str, Outcome]]:
    """Close the open commands of nodes that are gone: (id, caller node, outcome) each.

    Pending ones were never sent: ``not_connected``. Ones being sent may have
    reached the charger, but their answer never will: ``timeout``.
    """
    rows = await conn.fetch(
        """
        UPDATE cluster_commands
        SET state = CASE state WHEN 'pending' THEN 'not_connected' ELSE 'timeout' END,
            error = jsonb_build_object('message', 'node ' || target_node || ' is gone'),
            finished_at = now()
        WHERE target_node = ANY($1::text[]) AND state IN ('pending', 'sending')
        RETURNING id, caller_node, state, error::text AS error
        """,
        target_nodes,
    )
    return [(r["id"], r["caller_node"], Outcome(r["state"], None, r["error"])) for r in rows]


async def outcome(conn: Executor, command_id: int) -> Outcome | None:
    """The command's outcome, or None while it is pending or being sent."""
    row = await conn.fetchrow(
        """
        SELECT state, response::text AS response, error::text AS error
        FROM cluster_commands WHERE id = $1
        """,
        command_id,
    )
    if row is None or row["state"] not in DONE_STATES:
        return None
    return Outcome(row["state"], row["response"], row["error"])


async def expire(conn: Executor, command_id: int) -> bool:
    """Withdraw a command no node has claimed; False if one already did."""
    value = await conn.fetchval(
        """
        UPDATE cluster_commands SET state = 'expired', finished_at = now()
        WHERE id = $1 AND state = 'pending' RETURNING true
        """,
        command_id,
    )
    return bool(value)


async def prune(conn: Executor, older_than_hours: float) -> int:
    status = await conn.execute(
        """
        DELETE FROM cluster_commands
        WHERE created_at < now() - make_interval(secs => $1 * 3600)
          AND (state <> 'pending' OR deadline < now())
        """,
        older_than_hours,
    )
    return int(status.split()[-1])
