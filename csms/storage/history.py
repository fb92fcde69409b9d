"""The durable event log (``event_history``, migration 0020): partitions and retention.

Events of the types operators keep for a year (boots, security events,
firmware and log uploads, connections, connector states) are copied from the
outbox into ``event_history`` by a trigger, in the same transaction. It is
partitioned by month: :func:`maintain` creates the partitions of the coming
months (rows that find none land in the default partition, never lost) and
drops the months that are wholly older than the retention.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from csms.storage import Executor

MONTHS_AHEAD = 2


def _month_starts(now: datetime, ahead: int) -> list[date]:
    year, month = now.year, now.month
    starts = []
    for _ in range(ahead + 1):
        starts.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return starts


async def maintain(conn: Executor, now: datetime, retention_days: float) -> list[str]:
    """Create the coming months' partitions, drop expired ones; return the dropped names."""
    for start in _month_starts(now, MONTHS_AHEAD):
        await conn.execute("SELECT csms_event_history_partition($1::date)", start)
    cutoff = now - timedelta(days=retention_days)
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'event_history'::regclass AND c.relname <> 'event_history_default'
        """
    )
    dropped = []
    for row in rows:
        year, month = (int(part) for part in row["name"].rsplit("_", 2)[1:])
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        if end <= cutoff:
            await conn.execute(f'DROP TABLE "{row["name"]}"')
            dropped.append(str(row["name"]))
    await conn.execute("DELETE FROM event_history_default WHERE recorded_at < $1", cutoff)
    return dropped
