"""The outbox's SQL: read unpublished rows, mark them, measure lag, prune.

Rows are marked one by one (``published_at``), never by a "last published id"
watermark: ids are assigned at insert but become visible at commit, so a
transaction that commits late can hold an id below rows already published,
and a watermark would skip it forever.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.outbox.envelope import OutboxRow
from csms.storage import Executor

RELAY_LOCK_KEY = 0x0C5A5_0002  # advisory lock: "the outbox relay" (0001 is the migrator)


async def fetch_unpublished(conn: Executor, limit: int) -> list[OutboxRow]:
    """The oldest unpublished events, in id (= recording) order."""
    rows = await conn.fetch(
        """
        SELECT id, event_id, type, charge_point_id, evse_id, connector_id, occurred_at,
               recorded_at, payload, context
        FROM events WHERE published_at IS NULL ORDER BY id LIMIT $1
        """,
        limit,
    )
    return [
        OutboxRow(
            id=r["id"],
            event_id=r["event_id"],
            type=r["type"],
            charge_point_id=r["charge_point_id"],
            evse_id=r["evse_id"],
            connector_id=r["connector_id"],
            occurred_at=r["occurred_at"],
            recorded_at=r["recorded_at"],
            payload=_json(r["payload"]) or {},
            context=_json(r["context"]),
        )
        for r in rows
    ]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def mark_published(conn: Executor, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(
            "UPDATE events SET published_at = now() WHERE id = ANY($1::bigint[])", list(ids)
        )


@dataclass(frozen=True, slots=True)
class Lag:
    """How far the relay is behind: unpublished events and the age of the oldest."""

    unpublished: int
    oldest_age_s: float | None


# Counted up to this many: without a relay every event within the retention is
# unpublished by design (millions), and the count runs every 30 s on every node.
LAG_COUNT_CAP = 100_000


async def lag(conn: Executor) -> Lag:
    """Unpublished events (at most LAG_COUNT_CAP) and the age of the oldest.

    Both read the ``events_unpublished`` index only as far as they need: the oldest
    is the first in id order, not the minimum over every unpublished row.
    """
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM (SELECT 1 FROM events WHERE published_at IS NULL
                                      LIMIT $1) AS waiting) AS n,
               extract(epoch FROM now() - (SELECT recorded_at FROM events
                                          WHERE published_at IS NULL ORDER BY id LIMIT 1)
               )::float8 AS age
        """,
        LAG_COUNT_CAP,
    )
    assert row is not None
    return Lag(row["n"], row["age"])


async def prune(
    conn: Executor, older_than: datetime, *, include_unpublished: bool, chunk: int = 5000
) -> int:
    """Delete events recorded before ``older_than``; return how many.

    Published rows only while a relay runs; with the relay off the outbox is
    bounded too, so unpublished rows go as well (``include_unpublished``).
    Deleted in chunks so no single statement holds locks for long.
    """
    total = 0
    condition = "" if include_unpublished else "AND published_at IS NOT NULL"
    while True:
        status = await conn.execute(
            f"""
            DELETE FROM events WHERE id IN (
                SELECT id FROM events WHERE recorded_at < $1 {condition} LIMIT $2)
            """,
            older_than,
            chunk,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < chunk:
            return total


def retention_cutoff(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
