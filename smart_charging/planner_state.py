"""What a site's planner has told the chargers, kept in Postgres (migration 0017).

One node plans a site at a time (:mod:`smart_charging.leadership`); the next one
- after a failover, a restart or a graceful hand-over - resumes from these rows:

* ``sc_session_limits``: per session (EVSE), the limit it last *accepted*, a
  limit *sent* whose answer is not stored yet (written before the send), and
  the draw assumed while it cannot be steered. The worst case a new planner
  assumes is the largest of the three (:func:`worst_case`), or the hardware
  maximum where nothing is stored;
* ``sc_site_planner_state``: when a decrease was last accepted on the site (no
  increase before it has settled, whichever node sends it), and the last view;
* ``sc_fallback_state``: the failsafe profiles each charger accepted.

Writes that commit what the planner is about to do check the lease's fencing
token in the same transaction (:func:`csms.cluster.leases.lease_is_current`):
a planner that lost its site without noticing yet cannot record - and so does
not send - anything more. A plan's writes are one statement each
(:func:`commit`): the fencing check, the sessions' rows, the ended sessions'
deletion and the site's row in one round trip, atomic as a transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class StoredLimit:
    """One row of ``sc_session_limits``."""

    charge_point_id: str
    evse_id: int
    transaction_id: str
    limit_a: float | None
    pending_a: float | None
    assumed_a: float | None
    phases: int


@dataclass(frozen=True, slots=True)
class Told:
    """What a planner records for one session: the limit accepted, sent or assumed."""

    charge_point_id: str
    evse_id: int
    transaction_id: str
    phases: int
    limit_a: float | None
    pending_a: float | None = None
    assumed_a: float | None = None


def worst_case(stored: StoredLimit | None, hardware_max: float) -> float:
    """The most a session may draw, by what was stored of it (pure).

    A pending limit may have been applied (the answer was lost with the node) and
    an earlier, higher one may still be in force (a decrease not yet accepted):
    take the largest. Nothing stored: the charger's hardware maximum.
    """
    if stored is None:
        return hardware_max
    values = [v for v in (stored.limit_a, stored.pending_a, stored.assumed_a) if v is not None]
    return max(values) if values else hardware_max


async def load_limits(conn: Executor, site_id: str) -> dict[tuple[str, int], StoredLimit]:
    rows = await conn.fetch(
        "SELECT charge_point_id, evse_id, transaction_id, limit_a, pending_a, assumed_a, phases "
        "FROM sc_session_limits WHERE site_id = $1",
        site_id,
    )
    return {(r["charge_point_id"], r["evse_id"]): StoredLimit(**dict(r)) for r in rows}


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write must still hold: its name and this planner's token."""

    lease: str
    token: int


_COMMIT = """
WITH flush AS (
    -- set_config(..., true) lasts to the end of this statement's own transaction.
    SELECT set_config('synchronous_commit', CASE WHEN $18::bool THEN 'on' ELSE 'off' END, true)
), held AS (
    SELECT token FROM cluster_leases WHERE name = $1 FOR SHARE
), fence AS (
    SELECT $1::text IS NULL OR coalesce((SELECT token FROM held) = $2::bigint, false) AS ok
), told AS (
    INSERT INTO sc_session_limits (charge_point_id, evse_id, transaction_id, site_id,
                                   limit_a, pending_a, assumed_a, phases)
    SELECT t.cp, t.evse, t.tx, $3, t.limit_a, t.pending_a, t.assumed_a, t.phases
    FROM unnest($4::text[], $5::int[], $6::text[], $7::float8[], $8::float8[],
                $9::float8[], $10::smallint[])
         AS t(cp, evse, tx, limit_a, pending_a, assumed_a, phases)
    WHERE (SELECT ok FROM fence)
    ON CONFLICT (charge_point_id, evse_id) DO UPDATE SET
        transaction_id = EXCLUDED.transaction_id, site_id = EXCLUDED.site_id,
        limit_a = EXCLUDED.limit_a, pending_a = EXCLUDED.pending_a,
        assumed_a = EXCLUDED.assumed_a, phases = EXCLUDED.phases, updated_at = now()
    RETURNING 1
), ended AS (
    -- Sessions no longer active; an EVSE whose row the upsert above rewrites is left
    -- to it (one statement must not modify a row twice).
    DELETE FROM sc_session_limits l
    WHERE $11::bool AND (SELECT ok FROM fence) AND l.site_id = $3
      AND NOT EXISTS (
        SELECT 1 FROM unnest($12::text[], $13::int[], $14::text[]) AS a(cp, evse, tx)
        WHERE a.cp = l.charge_point_id AND a.evse = l.evse_id AND a.tx = l.transaction_id)
      AND NOT EXISTS (
        SELECT 1 FROM unnest($4::text[], $5::int[]) AS w(cp, evse)
        WHERE w.cp = l.charge_point_id AND w.evse = l.evse_id)
    RETURNING 1
), site AS (
    INSERT INTO sc_site_planner_state AS s (site_id, planner, lease_token, last_decrease_at,
                                            planned_at, view)
    SELECT $3, $15, $2, CASE WHEN $16::bool THEN now() END,
           CASE WHEN $17::jsonb IS NOT NULL THEN now() END, $17::jsonb
    WHERE (SELECT ok FROM fence) AND ($16::bool OR $17::jsonb IS NOT NULL)
    ON CONFLICT (site_id) DO UPDATE SET
        planner = EXCLUDED.planner, lease_token = EXCLUDED.lease_token,
        last_decrease_at = CASE WHEN $16::bool THEN now() ELSE s.last_decrease_at END,
        planned_at = coalesce(EXCLUDED.planned_at, s.planned_at),
        view = coalesce(EXCLUDED.view, s.view)
    RETURNING 1
)
SELECT ok FROM fence, flush
"""


async def commit(
    conn: Executor,
    site_id: str,
    fence: Fence | None,
    planner: str,
    told: Sequence[Told],
    *,
    active: Sequence[tuple[str, int, str]] | None = None,
    decreased: bool = False,
    view: Mapping[str, Any] | None = None,
    durable: bool = True,
) -> bool:
    """Store a plan's state in one statement, if ``fence`` still holds; False if not.

    ``told``: rows to upsert (one per EVSE); ``active``: when given, every other session
    row of the site is deleted (it ended); ``decreased``: a decrease was accepted now
    (the database's clock); ``view``: the plan's view. Nothing is written when the
    lease has passed to another planner; the lease row is locked ``FOR SHARE`` meanwhile,
    so a takeover waits for this statement.

    ``durable=False`` commits without waiting for the WAL flush: only for a write whose
    loss in a database crash is safe - one that turns pending limits into accepted ones
    (the pending rows stay, and a new planner assumes the higher of the two).
    """
    rows = {(t.charge_point_id, t.evse_id): t for t in told}.values()  # one per EVSE
    gone = active or ()
    ok = await conn.fetchval(
        _COMMIT,
        fence.lease if fence is not None else None,
        fence.token if fence is not None else 0,
        site_id,
        [t.charge_point_id for t in rows],
        [t.evse_id for t in rows],
        [t.transaction_id for t in rows],
        [t.limit_a for t in rows],
        [t.pending_a for t in rows],
        [t.assumed_a for t in rows],
        [t.phases for t in rows],
        active is not None,
        [a[0] for a in gone],
        [a[1] for a in gone],
        [a[2] for a in gone],
        planner,
        decreased,
        json.dumps(view) if view is not None else None,
        durable,
    )
    return bool(ok)


async def seconds_since_decrease(conn: Executor, site_id: str) -> float | None:
    """How long ago (database clock) a decrease was last accepted on the site, or None."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM now() - last_decrease_at) FROM sc_site_planner_state "
        "WHERE site_id = $1",
        site_id,
    )
    return None if value is None else float(value)


async def load_view(conn: Executor, site_id: str) -> dict[str, Any] | None:
    """The last plan's view of the site as its planner stored it, with who planned it."""
    row = await conn.fetchrow(
        "SELECT planner, view FROM sc_site_planner_state WHERE site_id = $1", site_id
    )
    if row is None or row["view"] is None:
        return None
    view: dict[str, Any] = json.loads(row["view"])
    view["planner"] = row["planner"]
    return view


async def load_fallbacks(
    conn: Executor, charge_point_ids: Sequence[str]
) -> dict[str, tuple[float | None, float | None]]:
    """charger -> (max-profile limit, TxDefault limit) it accepted."""
    rows = await conn.fetch(
        "SELECT charge_point_id, max_limit_a, default_limit_a FROM sc_fallback_state "
        "WHERE charge_point_id = ANY($1::text[])",
        list(charge_point_ids),
    )
    return {r["charge_point_id"]: (r["max_limit_a"], r["default_limit_a"]) for r in rows}


async def save_fallbacks(
    conn: Executor, accepted: Mapping[str, tuple[float | None, float | None]]
) -> None:
    if not accepted:
        return
    await conn.executemany(
        """
        INSERT INTO sc_fallback_state (charge_point_id, max_limit_a, default_limit_a)
        VALUES ($1, $2, $3)
        ON CONFLICT (charge_point_id) DO UPDATE SET
            max_limit_a = EXCLUDED.max_limit_a, default_limit_a = EXCLUDED.default_limit_a,
            updated_at = now()
        """,
        [(cp, m, d) for cp, (m, d) in accepted.items()],
    )


async def forget_fallbacks(conn: Executor, charge_point_id: str) -> None:
    """The charger rebooted or went away: it may have lost its failsafe profiles."""
    await conn.execute("DELETE FROM sc_fallback_state WHERE charge_point_id = $1", charge_point_id)
