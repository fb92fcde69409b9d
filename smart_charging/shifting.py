"""A site's time-of-use prices: the daily tariff an operator sets, as price intervals (pure).

The price model is a *daily time-of-day tariff* in the site's time zone: a
list of ``(start time of day, price)`` entries, each in force from its start
until the next entry's start, the last one wrapping round midnight to the
first (``[(00:00, 0.10), (07:00, 0.30), (22:00, 0.10)]`` is a night tariff).
That is what an operator reads off an electricity bill; :func:`price_intervals`
turns it into explicit one-off intervals (offsets in seconds from now), and the
site-wide plan (:mod:`smart_charging.tou_plan`) only ever sees those, so another
price source (a day-ahead market feed) would plug in there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class TariffEntry:
    """From ``start`` (local time of day) until the next entry's start: ``price`` per kWh."""

    start: time
    price: float


@dataclass(frozen=True, slots=True)
class PriceInterval:
    """``price`` from ``start`` to ``end``, in seconds from now."""

    start: float
    end: float
    price: float


def price_intervals(
    tariff: Sequence[TariffEntry], zone: str, now: datetime, until: datetime
) -> list[PriceInterval]:
    """The daily ``tariff`` in time zone ``zone`` as intervals covering ``now`` to ``until``."""
    if not tariff or until <= now:
        return []
    entries = sorted(tariff, key=lambda e: e.start)
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date() - timedelta(days=1)  # the entry in force at now began then
    last_day = until.astimezone(tz).date()
    starts: list[tuple[datetime, float]] = []
    while day <= last_day:
        for e in entries:
            # Local wall-clock times (a DST gap or overlap shifts an entry by an hour at most).
            starts.append((datetime.combine(day, e.start, tzinfo=tz), e.price))
        day += timedelta(days=1)
    out = []
    for (at, price), (next_at, _) in zip(starts, [*starts[1:], (until, 0.0)], strict=True):
        begin, end = max(at, now), min(next_at, until)
        if end > begin:
            out.append(
                PriceInterval((begin - now).total_seconds(), (end - now).total_seconds(), price)
            )
    return out


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    """A site's daily tariff: entries (local time of day, price) in IANA time zone ``zone``."""

    zone: str
    entries: tuple[TariffEntry, ...]
