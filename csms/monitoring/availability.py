"""Availability over a time window, from downtime and connector-status intervals (pure).

A charger is *online* outside its downtime intervals. A connector is *usable*
while its status is Available, Occupied or Reserved (a driver can or does
charge there) *and* its charger is online: a connector last reported
Available on a charger that has gone offline is not usable.

Percentages are of the observed part of the window: the window clipped to
when the CSMS first knew the charger (or, for a connector, its first status),
and to now. A window with nothing observed gives ``None``, not 0 % or 100 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

USABLE_STATUSES = frozenset({"Available", "Occupied", "Reserved"})


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime | None  # None: still going on


@dataclass(frozen=True, slots=True)
class StatusInterval:
    evse_id: int
    connector_id: int
    status: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class ConnectorAvailability:
    evse_id: int
    connector_id: int
    observed_s: float
    usable_s: float

    @property
    def usable_percent(self) -> float | None:
        return _percent(self.usable_s, self.observed_s)


@dataclass(frozen=True, slots=True)
class ChargerAvailability:
    charge_point_id: str
    observed_s: float
    online_s: float
    downtime: tuple[Interval, ...]  # clipped to the window
    connectors: tuple[ConnectorAvailability, ...]

    @property
    def online_percent(self) -> float | None:
        return _percent(self.online_s, self.observed_s)


def _percent(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 3)


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of ``intervals`` inside [start, end], merged and sorted."""
    pieces = sorted(
        (max(i.start, start), min(i.end or end, end))
        for i in intervals
        if (i.end is None or i.end > start) and i.start < end
    )
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in pieces:
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return [Interval(lo, hi) for lo, hi in merged]


def total_seconds(intervals: Iterable[Interval]) -> float:
    return sum((i.end - i.start).total_seconds() for i in intervals if i.end is not None)


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two merged, sorted, closed interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        a_end, b_end = a[i].end, b[j].end
        assert a_end is not None and b_end is not None, "clip() first"
        lo, hi = max(a[i].start, b[j].start), min(a_end, b_end)
        if lo < hi:
            out.append(Interval(lo, hi))
        if a_end < b_end:
            i += 1
        else:
            j += 1
    return out


def charger_availability(
    charge_point_id: str,
    window: tuple[datetime, datetime],
    known_since: datetime,
    downtime: Iterable[Interval],
    statuses: Iterable[StatusInterval],
) -> ChargerAvailability:
    """Online and per-connector usable time of one charger over ``window``."""
    start, end = max(window[0], known_since), window[1]
    observed = max(0.0, (end - start).total_seconds())
    down = clip(downtime, start, end) if observed else []
    by_connector: dict[tuple[int, int], list[StatusInterval]] = {}
    for interval in statuses:
        by_connector.setdefault((interval.evse_id, interval.connector_id), []).append(interval)
    connectors = []
    for (evse_id, connector_id), history in sorted(by_connector.items()):
        first = min(s.start for s in history)
        c_start = max(start, first)
        c_observed = max(0.0, (end - c_start).total_seconds())
        usable = clip(
            (Interval(s.start, s.end) for s in history if s.status in USABLE_STATUSES),
            c_start,
            end,
        )
        usable_s = total_seconds(usable) - total_seconds(intersect(usable, down))
        connectors.append(ConnectorAvailability(evse_id, connector_id, c_observed, usable_s))
    return ChargerAvailability(
        charge_point_id=charge_point_id,
        observed_s=observed,
        online_s=observed - total_seconds(down),
        downtime=tuple(down),
        connectors=tuple(connectors),
    )


@dataclass(frozen=True, slots=True)
class SiteAvailability:
    """Availability of a site: its chargers' time pooled (a charger observed longer weighs more)."""

    site_id: str
    chargers: tuple[ChargerAvailability, ...]

    @property
    def observed_s(self) -> float:
        return sum(c.observed_s for c in self.chargers)

    @property
    def online_s(self) -> float:
        return sum(c.online_s for c in self.chargers)

    @property
    def online_percent(self) -> float | None:
        """% of the chargers' observed time they were online."""
        return _percent(self.online_s, self.observed_s)

    @property
    def connector_usable_percent(self) -> float | None:
        """% of the connectors' observed time they were usable (over every connector)."""
        connectors = [c for charger in self.chargers for c in charger.connectors]
        return _percent(sum(c.usable_s for c in connectors), sum(c.observed_s for c in connectors))
