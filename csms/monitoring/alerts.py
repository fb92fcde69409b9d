"""Alerts: what fault detection tells operators, and the events that announce them.

An alert is one open problem of one charger (or one of its connectors) found
by one rule: it is opened by the first finding, deduplicated while open
(``count`` and ``last_seen`` move, the evidence keeps the first few samples),
and resolved when its condition has been clear for a hold time, or by an
operator. Opening and resolving are events (:class:`AlertOpened`,
:class:`AlertResolved`) appended to the event log in the same transaction as
the alert row, so they reach Kafka's ``charger-alerts`` topic through the
outbox, and are published on the in-process bus after commit (the stream and
webhooks of :mod:`csms.monitoring` forward every ``alert_*`` event).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from csms.events import Event


class Severity(enum.StrEnum):
    """How urgent an alert is; ``critical`` means a driver cannot charge."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# The two classes repeat their fields on purpose: a shared Event base class would
# itself be an event type (with a topic and schema) as far as the outbox knows.


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertOpened(Event):
    """A rule found a new problem (no alert of that rule was open for that connector)."""

    type: ClassVar[str] = "alert_opened"
    alert_id: int
    rule: str
    severity: Severity
    evse_id: int | None
    connector_id: int | None
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int
    evidence: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertResolved(Event):
    """An open alert was closed: its condition cleared for the hold time, or an operator did."""

    type: ClassVar[str] = "alert_resolved"
    alert_id: int
    rule: str
    severity: Severity
    evse_id: int | None
    connector_id: int | None
    message: str
    first_seen: datetime
    last_seen: datetime
    count: int
    evidence: tuple[dict[str, Any], ...] = ()
    resolved_by: str = "auto"  # "auto", or "api:<key name>" when an operator resolved it


# -- lifecycle --------------------------------------------------------------------------

AlertKey = tuple[str, int | None, int | None, str]
"""What deduplicates alerts: (charge point id, EVSE id, connector id, rule)."""


@dataclass(slots=True)
class Tracked:
    """An unresolved alert as the lifecycle sees it."""

    alert_id: int
    severity: str  # as stored (a later finding may change it): the gauge's label
    clear_since: datetime | None = None  # condition observed clear since (server clock)


class Lifecycle:
    """Which alerts are unresolved, and since when each one's condition has been clear.

    No I/O: the service asks it what to do (:meth:`due`, :meth:`key_of`) and
    tells it what was stored (:meth:`opened`, :meth:`resolved`). A finding
    restarts the clear hold; a clear starts it once.

    It also counts the unresolved alerts per (severity, rule) — the
    ``csms_alerts_open`` gauge — as they are opened, re-rated and resolved, so
    the gauge costs no query (a GROUP BY over every unresolved alert after each
    opened one made a burst of N alerts cost N such scans). Exact because every
    change of the set passes through here on the lease holder: built from
    Postgres on takeover, told of each alert it stores or resolves, and of an
    operator's resolution on another node by its ``alert_resolved`` event.
    """

    def __init__(self) -> None:
        self.unresolved: dict[AlertKey, Tracked] = {}
        self._keys: dict[int, AlertKey] = {}  # alert id -> key (operator resolutions)
        self._counts: dict[tuple[str, str], int] = {}  # (severity, rule) -> unresolved
        # charger -> its unresolved alerts: a charger with none has nothing a clear could
        # start holding (most meter values; see :meth:`has_unresolved`).
        self._per_charger: dict[str, int] = {}

    def opened(self, key: AlertKey, alert_id: int, severity: str) -> None:
        """``key``'s unresolved alert is ``alert_id``, of ``severity`` (as stored now)."""
        previous = self.unresolved.get(key)
        if previous is not None:
            self._count(previous.severity, key[3], -1)
            self._keys.pop(previous.alert_id, None)
        else:
            self._per_charger[key[0]] = self._per_charger.get(key[0], 0) + 1
        self.unresolved[key] = Tracked(alert_id, severity)
        self._keys[alert_id] = key
        self._count(severity, key[3], +1)

    def refreshed(self, key: AlertKey, alert_id: int, severity: str) -> None:
        """A finding folded into the unresolved alert (which may predate this lifecycle)."""
        tracked = self.unresolved.get(key)
        if tracked is None or tracked.alert_id != alert_id or tracked.severity != severity:
            self.opened(key, alert_id, severity)
        else:
            tracked.clear_since = None

    def found_again(self, key: AlertKey) -> None:
        tracked = self.unresolved.get(key)
        if tracked is not None:
            tracked.clear_since = None

    def cleared(self, key: AlertKey, now: datetime) -> None:
        tracked = self.unresolved.get(key)
        if tracked is not None and tracked.clear_since is None:
            tracked.clear_since = now

    def due(self, now: datetime, hold_s: float) -> list[tuple[AlertKey, int]]:
        """Alerts whose condition has been clear for ``hold_s`` seconds: resolve them."""
        return [
            (key, t.alert_id)
            for key, t in self.unresolved.items()
            if t.clear_since is not None and (now - t.clear_since).total_seconds() >= hold_s
        ]

    def resolved(self, key: AlertKey) -> None:
        tracked = self.unresolved.pop(key, None)
        if tracked is not None:
            self._keys.pop(tracked.alert_id, None)
            self._count(tracked.severity, key[3], -1)
            left = self._per_charger.pop(key[0]) - 1
            if left:
                self._per_charger[key[0]] = left

    def has_unresolved(self, charge_point_id: str) -> bool:
        """Whether the charger has an unresolved alert (if not, :meth:`cleared` is a no-op)."""
        return charge_point_id in self._per_charger

    def key_of(self, alert_id: int) -> AlertKey | None:
        return self._keys.get(alert_id)

    def counts(self) -> dict[tuple[str, str], int]:
        """Unresolved alerts per (severity, rule), pairs with none left out."""
        return dict(self._counts)

    def _count(self, severity: str, rule: str, delta: int) -> None:
        label = (severity, rule)
        n = self._counts.get(label, 0) + delta
        if n > 0:
            self._counts[label] = n
        else:
            self._counts.pop(label, None)
