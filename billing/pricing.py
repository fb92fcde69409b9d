"""Price one session: meter readings, states and power in, an itemised price out.

:func:`price_session` is a pure function (no I/O, no clock): the same usage
and tariff always give the same record, so a CDR can be re-priced and checked.

How a price is built (all amounts net of tax until the tax line):

1. ``flat_fee`` once per session;
2. energy: the delivered energy of each meter step (:mod:`billing.energy`)
   is split over the tariff's time-of-use segments in proportion to time --
   linear interpolation between the two readings around a period boundary --
   one line per period at that period's price per kWh;
3. charging time and parking time (idle time beyond the grace period, which
   is taken off the session's total idle time) per minute;
4. a ``min_price`` / ``max_price`` adjustment line bringing the net sum into
   bounds;
5. tax: ``vat_rate`` x the net sum.

Every line is rounded half-even to the currency's minor units
(:mod:`billing.money`); the total is the sum of the lines, tax included.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from billing.activity import PowerSample, StateChange, split_activity
from billing.energy import EnergyStep, MeterFlag, Reading, delivered_energy
from billing.money import round_money
from billing.tariff import PriceSegment, Tariff, price_segments

BASE_PERIOD = "base"  # name of the energy line priced at the tariff's own price_per_kwh
SPLIT_QUANTUM = Decimal("0.001")  # Wh: a time-of-use share is exact to the milliwatt-hour


class ItemKind(enum.StrEnum):
    FLAT_FEE = "flat_fee"
    ENERGY = "energy"
    CHARGING_TIME = "charging_time"
    PARKING_TIME = "parking_time"
    MIN_PRICE = "min_price_adjustment"
    MAX_PRICE = "max_price_adjustment"
    TAX = "tax"


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of the bill; ``amount`` is rounded, ``quantity x unit_price`` is not."""

    kind: ItemKind
    description: str
    quantity: Decimal
    unit: str  # "session", "kWh", "min" or "net"
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class SessionUsage:
    """What a session used, as the CSMS recorded it."""

    started_at: datetime
    ended_at: datetime  # for a running session: now
    readings: Sequence[Reading]
    states: Sequence[StateChange] = ()
    power: Sequence[PowerSample] = ()
    max_power_w: Decimal | None = None  # the connector's maximum; None: no jump check


@dataclass(frozen=True, slots=True)
class PricedSession:
    currency: str
    items: tuple[LineItem, ...]
    energy_wh: Decimal  # billed energy
    energy_wh_by_period: dict[str, Decimal]
    meter_start_wh: Decimal | None
    meter_stop_wh: Decimal | None
    charging_time: timedelta
    parking_time: timedelta  # all idle time, grace included
    flags: frozenset[MeterFlag]

    @property
    def net(self) -> Decimal:
        return sum((i.amount for i in self.items if i.kind is not ItemKind.TAX), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return sum((i.amount for i in self.items if i.kind is ItemKind.TAX), Decimal(0))

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.items), Decimal(0))


def _seconds(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1)) / 1_000_000


def split_energy(
    steps: Sequence[EnergyStep], segments: Sequence[PriceSegment]
) -> dict[str | None, Decimal]:
    """Energy per period: each step shared over the segments it overlaps, by time.

    Shares are rounded to :data:`SPLIT_QUANTUM` and the last overlapping share
    of a step gets the remainder, so the split sums exactly to the steps'
    energy (no digits lost to ``Decimal`` precision). A zero-length step goes
    to the segment it is in.
    """
    split: dict[str | None, Decimal] = {}
    for step in steps:
        if step.wh == 0:
            continue
        overlaps = [
            (s, min(s.end, step.end) - max(s.start, step.start))
            for s in segments
            if s.start < step.end and step.start < s.end
        ]
        if not overlaps or step.end <= step.start:
            inside = [s for s in segments if s.start <= step.start <= s.end] or [segments[-1]]
            split[inside[0].period] = split.get(inside[0].period, Decimal(0)) + step.wh
            continue
        duration = _seconds(step.end - step.start)
        left = step.wh
        for index, (segment, overlap) in enumerate(overlaps):
            share = (
                left
                if index == len(overlaps) - 1
                else (step.wh * _seconds(overlap) / duration).quantize(SPLIT_QUANTUM)
            )
            left -= share
            split[segment.period] = split.get(segment.period, Decimal(0)) + share
    return split


def _energy_items(
    tariff: Tariff, split: dict[str | None, Decimal], segments: Sequence[PriceSegment]
) -> list[LineItem]:
    price_of = {s.period: s.price_per_kwh for s in segments}
    items = []
    for period, wh in split.items():
        kwh = wh / 1000
        price = price_of[period]
        description = f"energy ({period or BASE_PERIOD})"
        amount = round_money(kwh * price, tariff.currency)
        items.append(LineItem(ItemKind.ENERGY, description, kwh, "kWh", price, amount))
    return items


def _minutes_item(
    tariff: Tariff, kind: ItemKind, description: str, span: timedelta, price: Decimal
) -> LineItem:
    seconds = _seconds(span)
    amount = round_money(seconds * price / 60, tariff.currency)
    return LineItem(kind, description, seconds / 60, "min", price, amount)


def _bounds_item(tariff: Tariff, net: Decimal) -> LineItem | None:
    """The line that brings ``net`` up to ``min_price`` or down to ``max_price``."""
    if tariff.min_price is not None:
        floor = round_money(tariff.min_price, tariff.currency)
        if net < floor:
            diff = floor - net
            return LineItem(ItemKind.MIN_PRICE, "minimum price", Decimal(1), "session", diff, diff)
    if tariff.max_price is not None:
        cap = round_money(tariff.max_price, tariff.currency)
        if net > cap:
            diff = cap - net
            return LineItem(ItemKind.MAX_PRICE, "maximum price", Decimal(1), "session", diff, diff)
    return None


def price_session(tariff: Tariff, usage: SessionUsage) -> PricedSession:
    """The itemised price of ``usage`` under ``tariff`` (see the module docstring)."""
    energy = delivered_energy(usage.readings, usage.max_power_w)
    span_start = min([usage.started_at, *(s.start for s in energy.steps)])
    span_end = max([usage.ended_at, *(s.end for s in energy.steps)])
    segments = price_segments(tariff, span_start, span_end)
    split = split_energy(energy.steps, segments)
    activity = split_activity(usage.started_at, usage.ended_at, usage.states, usage.power)
    grace = timedelta(seconds=float(tariff.parking_grace_minutes * 60))
    billable_parking = max(timedelta(0), activity.idle - grace)

    items: list[LineItem] = []
    if tariff.flat_fee:
        fee = round_money(tariff.flat_fee, tariff.currency)
        items.append(LineItem(ItemKind.FLAT_FEE, "session fee", Decimal(1), "session", fee, fee))
    items.extend(_energy_items(tariff, split, segments))
    if tariff.price_per_charging_minute:
        items.append(
            _minutes_item(
                tariff,
                ItemKind.CHARGING_TIME,
                "charging time",
                activity.charging,
                tariff.price_per_charging_minute,
            )
        )
    if tariff.price_per_parking_minute:
        items.append(
            _minutes_item(
                tariff,
                ItemKind.PARKING_TIME,
                f"parking time after {tariff.parking_grace_minutes} min grace",
                billable_parking,
                tariff.price_per_parking_minute,
            )
        )
    net = sum((i.amount for i in items), Decimal(0))
    bound = _bounds_item(tariff, net)
    if bound is not None:
        items.append(bound)
        net += bound.amount
    if tariff.vat_rate:
        tax = round_money(net * tariff.vat_rate, tariff.currency)
        percent = f"{(tariff.vat_rate * 100).normalize():f}"
        items.append(LineItem(ItemKind.TAX, f"VAT {percent} %", net, "net", tariff.vat_rate, tax))
    return PricedSession(
        currency=tariff.currency,
        items=tuple(items),
        energy_wh=energy.wh,
        energy_wh_by_period={(k or BASE_PERIOD): v for k, v in split.items()},
        meter_start_wh=energy.meter_start_wh,
        meter_stop_wh=energy.meter_stop_wh,
        charging_time=activity.charging,
        parking_time=activity.idle,
        flags=energy.flags,
    )
