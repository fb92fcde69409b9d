"""Stores what the rules observed: alerts opened, refreshed and resolved, in few transactions.

A burst (a saturated fleet trips ``short_sessions`` on hundreds of chargers
within seconds) used to cost the lease holder one transaction per finding;
here the findings of one turn of the engine (every event the feed had handed
over, or one tick) are stored together: the alert rows by one multi-row
statement (:func:`~csms.monitoring.alerts_store.record_findings`), the
``alert_opened`` events appended by one more, one commit, then the events
published on the bus and the lifecycle told, in the order of the observations.
If that transaction fails, the turn is stored again one finding per
transaction, in order, so a poisoned finding fails alone (as the group commit
of the charger path does). Resolutions due at once are one transaction too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import structlog

from csms.bus import EventBus
from csms.monitoring import alerts_store
from csms.monitoring.alerts import AlertKey, AlertOpened, Lifecycle
from csms.monitoring.alerts_store import AlertRow, FindingRow
from csms.monitoring.rules import Clear, Finding, Observation
from csms.storage import event_log

log = structlog.get_logger(__name__)

# Alerts opened in one turn that get a log line each; beyond them, one line counts the
# rest per rule (500 JSON lines held the loop ~30 ms: the chargers' loop, after commit).
LOGGED_EACH = 10

Pending = tuple[AlertKey, Observation, datetime]
"""An observation waiting to be stored: its alert key, itself, and when it was made."""


def _finding_row(key: AlertKey, finding: Finding, at: datetime) -> FindingRow:
    return FindingRow(
        charge_point_id=key[0],
        evse_id=finding.evse_id,
        connector_id=finding.connector_id,
        rule=finding.rule,
        severity=finding.severity,
        message=finding.message,
        at=at,
        evidence=finding.evidence,
    )


class AlertWriter:
    """The alert engine's writes: one transaction per turn, published after commit."""

    def __init__(self, pool: asyncpg.Pool, bus: EventBus, evidence_cap: int) -> None:
        self.pool = pool
        self.bus = bus
        self.evidence_cap = evidence_cap
        self.transactions = 0  # committed by this writer (for the tests and bench)

    async def store(self, lifecycle: Lifecycle, batch: list[Pending]) -> None:
        """Store ``batch`` and tell ``lifecycle``; ``batch`` is emptied as it is stored.

        What is left in ``batch`` when this raises was not stored (the caller keeps
        it for the next attempt).
        """
        at_ = [i for i, (_, obs, _) in enumerate(batch) if isinstance(obs, Finding)]
        if not at_:
            self._told(lifecycle, batch, {})
            return
        rows = [_finding_row(key, obs, at) for key, obs, at in (batch[i] for i in at_)
                if isinstance(obs, Finding)]  # fmt: skip
        try:
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    stored = await alerts_store.record_findings(conn, rows, self.evidence_cap)
                    opened = {
                        i: row.opened(batch[i][2])
                        for i, (row, is_new) in zip(at_, stored, strict=True)
                        if is_new
                    }
                    await event_log.append_many(conn, list(opened.values()))
                self.transactions += 1
                self._told(lifecycle, batch, dict(zip(at_, stored, strict=True)), opened)
        except (asyncpg.PostgresError, ValueError, TypeError) as failure:
            if not batch:
                raise  # stored; only giving the connection back failed
            log.warning("alerts.batch_failed", findings=len(rows), error=str(failure))
            await self._store_one_by_one(lifecycle, batch)

    async def _store_one_by_one(self, lifecycle: Lifecycle, batch: list[Pending]) -> None:
        """The old way, in order: a finding that fails is logged and skipped alone."""
        while batch:
            key, obs, at = batch[0]
            if not isinstance(obs, Finding):
                self._told(lifecycle, batch[:1], {})
                del batch[0]
                continue
            try:
                async with self.pool.acquire() as conn:
                    async with conn.transaction():
                        ((row, is_new),) = await alerts_store.record_findings(
                            conn, [_finding_row(key, obs, at)], self.evidence_cap
                        )
                        opened = {0: row.opened(at)} if is_new else {}
                        await event_log.append_many(conn, list(opened.values()))
                    self.transactions += 1
                    self._told(lifecycle, batch[:1], {0: (row, is_new)}, opened)
                    del batch[0]
            except (asyncpg.PostgresError, ValueError, TypeError):
                log.exception("alerts.finding_not_stored", charge_point_id=key[0], rule=obs.rule)
                del batch[0]

    def _told(
        self,
        lifecycle: Lifecycle,
        batch: list[Pending],
        stored: dict[int, tuple[AlertRow, bool]],
        opened: dict[int, AlertOpened] | None = None,
    ) -> None:
        """After commit (no await in here): publish, log and update the lifecycle in order."""
        logged, unlogged = 0, dict[str, int]()
        for i, (key, obs, at) in enumerate(batch):
            if isinstance(obs, Clear):
                lifecycle.cleared(key, at)
                continue
            row, _ = stored[i]
            event = (opened or {}).get(i)
            if event is not None:
                self.bus.publish(event)
                if logged < LOGGED_EACH:
                    log.warning(
                        "alert.opened", charge_point_id=key[0], rule=row.rule, message=row.message
                    )
                    logged += 1
                else:
                    unlogged[row.rule] = unlogged.get(row.rule, 0) + 1
                lifecycle.opened(key, row.id, row.severity.value)
            else:
                lifecycle.refreshed(key, row.id, row.severity.value)
        if unlogged:
            log.warning("alert.opened_more", count=sum(unlogged.values()), by_rule=unlogged)
        batch.clear()

    async def resolve(
        self,
        lifecycle: Lifecycle,
        due: Sequence[tuple[AlertKey | None, int]],
        at: datetime,
        by: str,
    ) -> list[AlertRow]:
        """Resolve alerts (key if known, id) in one transaction; the rows resolved now.

        An alert already resolved (by an operator meanwhile) is dropped from the
        lifecycle all the same.
        """
        if not due:
            return []
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await alerts_store.resolve_many(conn, [i for _, i in due], at, by)
                events = [row.resolved(at) for row in rows]
                await event_log.append_many(conn, events)
            self.transactions += 1
            for key, _ in due:
                if key is not None:
                    lifecycle.resolved(key)
            for n, (row, event) in enumerate(zip(rows, events, strict=True)):
                self.bus.publish(event)
                lifecycle.resolved(row.key)
                if n < LOGGED_EACH:
                    log.info(
                        "alert.resolved", charge_point_id=row.charge_point_id, rule=row.rule, by=by
                    )
            if len(rows) > LOGGED_EACH:
                log.info("alert.resolved_more", count=len(rows) - LOGGED_EACH, by=by)
        return rows
