"""SQL of alerts and alert-threshold overrides (tables of migrations/0008_alerts.sql)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.monitoring.alerts import AlertOpened, AlertResolved, Severity
from csms.storage import Executor
from csms.storage.where import Where, nearest_ids_below

_COLUMNS = """
    id, charge_point_id, evse_id, connector_id, rule, severity, status, message, first_seen,
    last_seen, count, evidence, acknowledged_at, acknowledged_by, resolved_at, resolved_by
"""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert as stored."""

    id: int
    charge_point_id: str
    evse_id: int | None
    connector_id: int | None
    rule: str
    severity: Severity
    status: str  # open, acknowledged, resolved
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int
    evidence: tuple[dict[str, Any], ...]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None

    @property
    def key(self) -> tuple[str, int | None, int | None, str]:
        return (self.charge_point_id, self.evse_id, self.connector_id, self.rule)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charge_point_id": self.charge_point_id,
            "evse_id": self.evse_id,
            "connector_id": self.connector_id,
            "rule": self.rule,
            "severity": self.severity.value,
            "status": self.status,
            "message": self.message,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "evidence": list(self.evidence),
            "acknowledged_at": self.acknowledged_at,
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
        }

    def opened(self, occurred_at: datetime) -> AlertOpened:
        return AlertOpened(
            charge_point_id=self.charge_point_id,
            occurred_at=occurred_at,
            **self._event_fields(),
        )

    def resolved(self, occurred_at: datetime) -> AlertResolved:
        return AlertResolved(
            charge_point_id=self.charge_point_id,
            occurred_at=occurred_at,
            resolved_by=self.resolved_by or "auto",
            **self._event_fields(),
        )

    def _event_fields(self) -> dict[str, Any]:
        return {
            "alert_id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "evse_id": self.evse_id,
            "connector_id": self.connector_id,
            "message": self.message,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "count": self.count,
            "evidence": self.evidence,
        }


def _row(record: Any) -> AlertRow:
    evidence = record["evidence"]
    if isinstance(evidence, str):
        evidence = json.loads(evidence)
    return AlertRow(
        id=record["id"],
        charge_point_id=record["charge_point_id"],
        evse_id=record["evse_id"],
        connector_id=record["connector_id"],
        rule=record["rule"],
        severity=Severity(record["severity"]),
        status=record["status"],
        message=record["message"],
        first_seen=record["first_seen"],
        last_seen=record["last_seen"],
        count=record["count"],
        evidence=tuple(evidence),
        acknowledged_at=record["acknowledged_at"],
        acknowledged_by=record["acknowledged_by"],
        resolved_at=record["resolved_at"],
        resolved_by=record["resolved_by"],
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


# Folds a finding into the unresolved alert of its key, or opens one. Evidence keeps the
# first ``$9 - 1`` findings ($9: the evidence cap) and the latest one; severity and
# message follow the latest finding (a warning may turn critical).
_ON_FINDING = (
    """
    ON CONFLICT (charge_point_id, COALESCE(evse_id, -1), COALESCE(connector_id, -1), rule)
        WHERE status <> 'resolved'
    DO UPDATE SET
        count = alerts.count + 1,
        last_seen = GREATEST(alerts.last_seen, EXCLUDED.last_seen),
        severity = EXCLUDED.severity,
        message = EXCLUDED.message,
        evidence = CASE
            WHEN jsonb_array_length(alerts.evidence) < $9 THEN alerts.evidence
            ELSE alerts.evidence - (jsonb_array_length(alerts.evidence) - 1)
        END || EXCLUDED.evidence,
        updated_at = now()
    RETURNING """
    + _COLUMNS
    + ", (xmax = 0) AS inserted"
)


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A finding to store: what :func:`record_findings` takes."""

    charge_point_id: str
    evse_id: int | None
    connector_id: int | None
    rule: str
    severity: Severity
    message: str
    at: datetime
    evidence: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, int | None, int | None, str]:
        return (self.charge_point_id, self.evse_id, self.connector_id, self.rule)


async def record_findings(
    conn: Executor, findings: Sequence[FindingRow], evidence_cap: int
) -> list[tuple[AlertRow, bool]]:
    """Open an alert for each finding, or fold it into the unresolved one with the same
    key (see ``_ON_FINDING``), in order, by one statement per round.

    A statement may not fold two findings into one row, so the findings are
    stored in rounds: the first finding of every key, then the second of the keys
    found twice, and so on (one round in practice) — each key's findings in their
    order, as one statement each would. Returns (row, opened now) per finding.
    """
    rounds: list[list[int]] = []
    seen: dict[tuple[str, int | None, int | None, str], int] = {}
    for i, finding in enumerate(findings):
        n = seen.get(finding.key, 0)
        seen[finding.key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    stored: list[tuple[AlertRow, bool] | None] = [None] * len(findings)
    for indices in rounds:
        chosen = [findings[i] for i in indices]
        records = await conn.fetch(
            """
            INSERT INTO alerts (charge_point_id, evse_id, connector_id, rule, severity,
                                message, first_seen, last_seen, evidence)
            SELECT f.cp, f.evse_id, f.connector_id, f.rule, f.severity, f.message, f.at, f.at,
                   jsonb_build_array(f.evidence)
            FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::text[], $6::text[],
                        $7::timestamptz[], $8::jsonb[])
                 WITH ORDINALITY AS f(cp, evse_id, connector_id, rule, severity, message, at,
                                      evidence, n)
            ORDER BY f.n
            """
            + _ON_FINDING,
            [f.charge_point_id for f in chosen],
            [f.evse_id for f in chosen],
            [f.connector_id for f in chosen],
            [f.rule for f in chosen],
            [f.severity.value for f in chosen],
            [f.message for f in chosen],
            [f.at for f in chosen],
            [_json(dict(f.evidence)) for f in chosen],
            max(1, evidence_cap),
        )
        by_key = {(r["charge_point_id"], r["evse_id"], r["connector_id"], r["rule"]): r
                  for r in records}  # fmt: skip
        for i in indices:
            record = by_key[findings[i].key]
            stored[i] = (_row(record), bool(record["inserted"]))
    return [s for s in stored if s is not None]


async def resolve_many(
    conn: Executor, alert_ids: Sequence[int], at: datetime, by: str
) -> list[AlertRow]:
    """Resolve the unresolved alerts among ``alert_ids`` in one statement: the rows
    resolved now, in id order (an id unknown or already resolved is left out)."""
    records = await conn.fetch(
        f"""
        UPDATE alerts SET status = 'resolved', resolved_at = $2, resolved_by = $3,
                          updated_at = now()
        WHERE id = ANY($1::bigint[]) AND status <> 'resolved'
        RETURNING {_COLUMNS}
        """,
        list(alert_ids),
        at,
        by,
    )
    return sorted((_row(r) for r in records), key=lambda row: row.id)


async def acknowledge(conn: Executor, alert_id: int, at: datetime, by: str) -> AlertRow | None:
    """Mark an open alert as seen by an operator (it stays unresolved)."""
    record = await conn.fetchrow(
        f"""
        UPDATE alerts SET status = 'acknowledged', acknowledged_at = $2, acknowledged_by = $3,
                          updated_at = now()
        WHERE id = $1 AND status = 'open'
        RETURNING {_COLUMNS}
        """,
        alert_id,
        at,
        by,
    )
    return None if record is None else _row(record)


async def get(conn: Executor, alert_id: int) -> AlertRow | None:
    record = await conn.fetchrow(f"SELECT {_COLUMNS} FROM alerts WHERE id = $1", alert_id)
    return None if record is None else _row(record)


async def unresolved(conn: Executor) -> list[AlertRow]:
    records = await conn.fetch(f"SELECT {_COLUMNS} FROM alerts WHERE status <> 'resolved'")
    return [_row(r) for r in records]


_UNRESOLVED = ("unresolved", "open", "acknowledged")


def _page_key(
    charge_point_id: str | None, rule: str | None, severity: str | None
) -> tuple[str, str] | None:
    """The filter whose index gives the page in id order, and that index's direction.

    A page of one charger, rule or severity is a range of its index (alerts_by_charger
    (charger, id DESC), alerts_by_rule and alerts_by_severity (key, id)) read from the
    cursor. Given as ``key = $1 ... ORDER BY id DESC``, the planner may instead walk
    the primary key newest first, assuming the key's alerts spread evenly over time: for
    a rule that fired months ago, or the rare critical alerts, that read nearly every
    alert. Written as a range (``key >= $1 AND key <= $1``, the same rows) ordered by
    (key, id DESC) -- the same order, as the key is fixed -- only that index gives the
    order; the primary key would need a sort of every alert. Unresolved alerts are not
    keyed: the partial index alerts_unresolved reads fewer.
    """
    if charge_point_id is not None:
        return "charge_point_id", "ASC"  # alerts_by_charger is (charge_point_id, id DESC)
    if rule is not None:
        return "rule", "DESC"  # read backwards: (rule DESC, id DESC)
    if severity is not None:
        return "severity", "DESC"
    return None


async def search(
    conn: Executor,
    *,
    status: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    charge_point_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AlertRow]:
    """Alerts newest first. ``status='unresolved'`` means open or acknowledged."""
    # Only the filters given become conditions, so each combination is planned for
    # itself (a "$n IS NULL OR" filter, planned once for all, read every alert).
    # Unresolved ones (the dashboard asks every few seconds) through the partial
    # index alerts_unresolved, whose predicate must appear literally.
    where = Where()
    unresolved = status in _UNRESOLVED
    if unresolved:
        where.always("status <> 'resolved'")
    if status != "unresolved":
        where.add("status = {}", status)
    key = _page_key(charge_point_id, rule, severity) if not unresolved else None
    for column, value in (
        ("charge_point_id", charge_point_id),
        ("rule", rule),
        ("severity", severity),
    ):
        if key is not None and column == key[0]:
            # As a range, not "=": see _page_key.
            where.add(f"{column} >= {{}} AND {column} <= {{}}", value)
        else:
            where.add(f"{column} = {{}}", value)
    where.add("last_seen >= {}", since)
    where.add("id < {}", before_id)
    if key is not None:
        order = f"ORDER BY {key[0]} {key[1]}, id DESC"
    elif since is not None and not unresolved:
        # Seen since a time, nothing else keyed: the newest ids among the alerts of the
        # range, from GiST alerts_last_seen_id (migration 0032); walking ids newest first
        # read every alert when the range held less than a page.
        order = nearest_ids_below(where, before_id)
    else:
        order = "ORDER BY id DESC"
    records = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE {where.sql} {order} LIMIT {where.param(limit)}",
        *where.args,
    )
    return [_row(r) for r in records]


# -- thresholds ------------------------------------------------------------------------


async def threshold_overrides(conn: Executor) -> dict[tuple[str, str], dict[str, Any]]:
    """Every override: (scope, key) -> {threshold name: value}."""
    records = await conn.fetch("SELECT scope, key, overrides FROM alert_thresholds")
    return {(r["scope"], r["key"]): json.loads(r["overrides"]) for r in records}


async def set_threshold_overrides(
    conn: Executor, scope: str, key: str, overrides: Mapping[str, Any]
) -> None:
    await conn.execute(
        """
        INSERT INTO alert_thresholds (scope, key, overrides) VALUES ($1, $2, $3::jsonb)
        ON CONFLICT (scope, key) DO UPDATE SET overrides = EXCLUDED.overrides, updated_at = now()
        """,
        scope,
        key,
        _json(dict(overrides)),
    )


async def delete_threshold_overrides(conn: Executor, scope: str, key: str) -> bool:
    result = await conn.execute(
        "DELETE FROM alert_thresholds WHERE scope = $1 AND key = $2", scope, key
    )
    return bool(result.endswith(" 1"))
