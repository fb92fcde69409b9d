"""SQL for webhook subscriptions and their durable deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    url: str
    event_types: tuple[str, ...]
    severities: tuple[str, ...]
    rules: tuple[str, ...]
    description: str | None
    created_by: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending delivery claimed for one attempt, with what is needed to send it."""

    id: int
    subscription_id: int
    event_id: uuid.UUID
    event_type: str
    body: str
    attempts: int  # before this one
    url: str
    secret: str


_SUBSCRIPTION_COLUMNS = (
    "id, url, event_types, severities, rules, description, created_by, created_at"
)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        row["id"],
        row["url"],
        tuple(row["event_types"]),
        tuple(row["severities"]),
        tuple(row["rules"]),
        row["description"],
        row["created_by"],
        row["created_at"],
    )


async def create_subscription(
    conn: Executor,
    url: str,
    secret: str,
    event_types: list[str],
    severities: list[str],
    rules: list[str],
    description: str | None,
    created_by: str | None,
) -> Subscription:
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhook_subscriptions
            (url, secret, event_types, severities, rules, description, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING {_SUBSCRIPTION_COLUMNS}
        """,
        url,
        secret,
        event_types,
        severities,
        rules,
        description,
        created_by,
    )
    return _subscription(row)


async def list_subscriptions(conn: Executor) -> list[Subscription]:
    rows = await conn.fetch(
        f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY id"
    )
    return [_subscription(row) for row in rows]


async def delete_subscription(conn: Executor, subscription_id: int) -> bool:
    status = await conn.execute("DELETE FROM webhook_subscriptions WHERE id = $1", subscription_id)
    return status.endswith(" 1")


async def enqueue(
    conn: Executor,
    event_id: uuid.UUID,
    event_type: str,
    severity: str | None,
    rule: str | None,
    body: str,
    recorded_at: datetime | None = None,
) -> int:
    """One pending delivery per subscription whose filters match; returns how many.

    Idempotent per (subscription, event). With ``recorded_at`` (catching up
    from the event log), subscriptions made after the event are left out.
    """
    status = await conn.execute(
        """
        INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, body)
        SELECT id, $1, $2, $5 FROM webhook_subscriptions
        WHERE (cardinality(event_types) = 0 OR $2 = ANY(event_types))
          AND (cardinality(severities) = 0 OR $3 = ANY(severities))
          AND (cardinality(rules) = 0 OR $4 = ANY(rules))
          AND ($6::timestamptz IS NULL OR created_at <= $6)
        ON CONFLICT (subscription_id, event_id) DO NOTHING
        """,
        event_id,
        event_type,
        severity,
        rule,
        body,
        recorded_at,
    )
    return int(status.split()[-1])


async def alert_events_not_queued(conn: Executor, window_s: float) -> list[Any]:
    """Alert events of the last ``window_s`` seconds with no delivery row at all.

    The event log holds every alert event (appended in the alert's own
    transaction); the bus hands them over only after commit, so a crash in
    between, or a full bus queue, would otherwise lose their webhooks.
    """
    return await conn.fetch(
        """
        SELECT e.event_id, e.type, e.charge_point_id, e.occurred_at, e.recorded_at, e.payload
        FROM events e
        WHERE e.type LIKE 'alert\\_%' AND e.recorded_at > now() - make_interval(secs => $1)
          AND e.recorded_at >= (SELECT min(created_at) FROM webhook_subscriptions)
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.event_id)
        ORDER BY e.id
        """,
        window_s,
    )


async def claim_due(conn: Executor, hold_s: float, limit: int = 50) -> list[Delivery]:
    """The oldest pending delivery of each subscription, if due, claimed for ``hold_s`` s.

    One short statement: the claim moves ``next_attempt_at`` past the attempt,
    so no transaction stays open while a receiver answers (a long transaction
    would hold back the cluster's event feed, see csms/cluster/feed.py). A
    process that dies mid-attempt leaves the row pending; it is due again once
    the claim has expired. Only the head of each subscription's queue is taken,
    so a receiver gets its events in order even across retries.
    """
    rows = await conn.fetch(
        """
        WITH heads AS (
            SELECT DISTINCT ON (subscription_id) id, next_attempt_at
            FROM webhook_deliveries WHERE status = 'pending'
            ORDER BY subscription_id, id
        ), due AS (
            SELECT d.id FROM webhook_deliveries d JOIN heads h ON h.id = d.id
            WHERE h.next_attempt_at <= now() AND d.status = 'pending'
            ORDER BY d.id LIMIT $1
            FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE webhook_deliveries d
        SET next_attempt_at = now() + make_interval(secs => $2)
        FROM due, webhook_subscriptions s
        WHERE d.id = due.id AND s.id = d.subscription_id
        RETURNING d.id, d.subscription_id, d.event_id, d.event_type, d.body, d.attempts,
                  s.url, s.secret
        """,
        limit,
        hold_s,
    )
    rows = sorted(rows, key=lambda r: r["id"])
    return [
        Delivery(
            r["id"],
            r["subscription_id"],
            r["event_id"],
            r["event_type"],
            r["body"],
            r["attempts"],
            r["url"],
            r["secret"],
        )
        for r in rows
    ]


async def release(conn: Executor, delivery_ids: list[int]) -> None:
    """Give claimed deliveries back unattempted: due again at once."""
    await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now()"
        " WHERE id = ANY($1::bigint[]) AND status = 'pending'",
        delivery_ids,
    )


async def mark_delivered(conn: Executor, delivery_id: int) -> None:
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL
        WHERE id = $1
        """,
        delivery_id,
    )


async def mark_failed_attempt(
    conn: Executor, delivery_id: int, error: str, retry_in_s: float | None
) -> None:
    """Record a failed attempt: retry in ``retry_in_s``, or give up (None)."""
    await conn.execute(
        """
        UPDATE webhook_deliveries
        SET attempts = attempts + 1, last_error = $2,
            status = CASE WHEN $3::float8 IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = CASE WHEN $3::float8 IS NULL THEN next_attempt_at
                                   ELSE now() + make_interval(secs => $3::float8) END
        WHERE id = $1
        """,
        delivery_id,
        error[:500],
        retry_in_s,
    )


async def prune(conn: Executor, older_than_s: float) -> int:
    """Forget delivered and given-up deliveries older than ``older_than_s`` seconds."""
    status = await conn.execute(
        """
        DELETE FROM webhook_deliveries
        WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1)
        """,
        older_than_s,
    )
    return int(status.split()[-1])


async def deliveries_of(conn: Executor, subscription_id: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, event_id, event_type, status, attempts, next_attempt_at, last_error,
               created_at, delivered_at
        FROM webhook_deliveries WHERE subscription_id = $1 ORDER BY id DESC LIMIT $2
        """,
        subscription_id,
        limit,
    )
    return [dict(row) for row in rows]
