"""Tariffs and their time-of-use periods, resolved to UTC price segments.

A tariff's time-of-use periods are wall-clock rules ("Mon-Fri 07:00-22:00")
in the tariff's time zone (the site's). :func:`price_segments` turns them into
UTC intervals by evaluating the wall clock *at the middle of each interval*
between candidate boundaries, so a DST change night is priced by what the
clocks on the wall said: a period starting at 02:30 on the night the clocks
jump from 02:00 to 03:00 starts at 03:00, and on the night they fall back
from 03:00 to 02:00 the hour 02:00-03:00 is priced twice by its wall time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.money import minor_units

ALL_WEEK = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """A time-of-use energy price on some weekdays (0 = Monday) between two wall times.

    ``end <= start`` wraps over midnight (22:00-06:00 is the night of each
    listed weekday into the next morning); ``start == end`` is the whole day.
    """

    name: str
    price_per_kwh: Decimal
    start: time
    end: time
    weekdays: frozenset[int] = ALL_WEEK

    def covers(self, local: datetime) -> bool:
        """Whether this period prices the wall-clock moment ``local``."""
        now, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start == self.end:
            return day in self.weekdays
        if self.start < self.end:
            return day in self.weekdays and self.start <= now < self.end
        # wraps over midnight: the evening of a listed day, or the next morning
        return (day in self.weekdays and now >= self.start) or (
            (day - 1) % 7 in self.weekdays and now < self.end
        )


@dataclass(frozen=True, slots=True)
class Tariff:
    """What a session costs; every price is net of tax, in ``currency``, never negative.

    ``periods`` override ``price_per_kwh`` (the first that covers a moment wins).
    ``min_price`` / ``max_price`` bound the net total; ``vat_rate`` is a fraction
    (0.19 for 19 %).
    """

    currency: str
    time_zone: str = "UTC"
    price_per_kwh: Decimal = Decimal(0)
    price_per_charging_minute: Decimal = Decimal(0)
    price_per_parking_minute: Decimal = Decimal(0)
    parking_grace_minutes: Decimal = Decimal(0)
    flat_fee: Decimal = Decimal(0)
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    vat_rate: Decimal = Decimal(0)
    periods: tuple[TouPeriod, ...] = field(default=())

    def __post_init__(self) -> None:
        minor_units(self.currency)  # raises UnknownCurrency
        ZoneInfo(self.time_zone)  # raises ZoneInfoNotFoundError
        amounts = [
            self.price_per_kwh,
            self.price_per_charging_minute,
            self.price_per_parking_minute,
            self.parking_grace_minutes,
            self.flat_fee,
            self.vat_rate,
            *(p.price_per_kwh for p in self.periods),
            *(x for x in (self.min_price, self.max_price) if x is not None),
        ]
        if any(a < 0 for a in amounts):
            raise ValueError("tariff prices, grace and VAT must not be negative")
        names = [p.name for p in self.periods]
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError("period names must be unique and not 'base'")
        if self.min_price is not None and self.max_price is not None:
            if self.min_price > self.max_price:
                raise ValueError("min_price must not exceed max_price")

    def period_at(self, local: datetime) -> TouPeriod | None:
        return next((p for p in self.periods if p.covers(local)), None)


@dataclass(frozen=True, slots=True)
class PriceSegment:
    """A UTC interval with one energy price; ``period`` None is the base price."""

    start: datetime
    end: datetime
    period: str | None
    price_per_kwh: Decimal


def _dst_transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """UTC instants in [start, end] where the zone's offset changes (to the quarter hour)."""
    step = timedelta(minutes=15)
    at = start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)
    offset = at.astimezone(zone).utcoffset()
    while at < end:
        nxt = at + step
        nxt_offset = nxt.astimezone(zone).utcoffset()
        if nxt_offset != offset:
            yield nxt
            offset = nxt_offset
        at = nxt


def _wall_boundaries(
    tariff: Tariff, zone: ZoneInfo, start: datetime, end: datetime
) -> set[datetime]:
    """UTC instants of every period start/end and midnight near [start, end].

    Both folds of each wall time are taken, so a time that happens twice
    (clocks falling back) or not at all (springing forward) still splits the
    interval where the wall clock can cross it.
    """
    times = {time(0)} | {p.start for p in tariff.periods} | {p.end for p in tariff.periods}
    first: date = start.astimezone(zone).date() - timedelta(days=1)
    last: date = end.astimezone(zone).date() + timedelta(days=1)
    found: set[datetime] = set()
    day = first
    while day <= last:
        for t in times:
            for fold in (0, 1):
                found.add(datetime.combine(day, t, tzinfo=zone).replace(fold=fold).astimezone(UTC))
        day += timedelta(days=1)
    return found


def price_segments(tariff: Tariff, start: datetime, end: datetime) -> list[PriceSegment]:
    """[start, end] cut where the energy price can change, each piece with its price.

    Neighbouring pieces with the same period are merged. Without periods the
    whole interval is one base-price segment.
    """
    if end <= start or not tariff.periods:
        return [PriceSegment(start, max(start, end), None, tariff.price_per_kwh)]
    zone = ZoneInfo(tariff.time_zone)
    cuts = _wall_boundaries(tariff, zone, start, end) | set(_dst_transitions(zone, start, end))
    points = [start, *sorted(c for c in cuts if start < c < end), end]
    segments: list[PriceSegment] = []
    for a, b in itertools.pairwise(points):
        period = tariff.period_at((a + (b - a) / 2).astimezone(zone))
        name = period.name if period else None
        price = period.price_per_kwh if period else tariff.price_per_kwh
        if segments and segments[-1].period == name:
            segments[-1] = PriceSegment(segments[-1].start, b, name, price)
        else:
            segments.append(PriceSegment(a, b, name, price))
    return segments
