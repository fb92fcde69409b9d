"""Properties of billing.pricing that must hold for every tariff and meter trace."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.energy import Reading
from billing.money import round_money
from billing.pricing import ItemKind, SessionUsage, price_session
from billing.tariff import Tariff, TouPeriod

START = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # the evening before Berlin's DST change

prices = st.decimals(min_value=0, max_value=2, places=4)
times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
periods = st.builds(
    TouPeriod,
    name=st.sampled_from(["a", "b", "c"]),
    price_per_kwh=prices,
    start=times,
    end=times,
    weekdays=st.frozensets(st.integers(0, 6), min_size=1),
)


@st.composite
def tariffs(draw: st.DrawFn) -> Tariff:
    low = draw(st.none() | st.decimals(min_value=0, max_value=5, places=2))
    high = draw(st.none() | st.decimals(min_value=5, max_value=50, places=2))
    return Tariff(
        currency=draw(st.sampled_from(["EUR", "JPY", "KWD"])),
        time_zone=draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])),
        price_per_kwh=draw(prices),
        price_per_charging_minute=draw(prices),
        price_per_parking_minute=draw(prices),
        parking_grace_minutes=draw(st.decimals(min_value=0, max_value=60, places=0)),
        flat_fee=draw(prices),
        min_price=low,
        max_price=high,
        vat_rate=draw(st.decimals(min_value=0, max_value=D("0.3"), places=3)),
        periods=tuple(draw(st.lists(periods, max_size=3, unique_by=lambda p: p.name))),
    )


# (minutes since the previous reading, Wh added) per step
steps = st.lists(
    st.tuples(st.integers(0, 180), st.decimals(min_value=0, max_value=30000, places=1)),
    min_size=1,
    max_size=12,
)


def trace(step_list: list[tuple[int, D]], extra: list[D] | None = None) -> SessionUsage:
    at, wh = START, D(1000)
    readings = [Reading(at, wh)]
    for index, (minutes, added) in enumerate(step_list):
        at += timedelta(minutes=minutes)
        wh += added + (extra[index] if extra else 0)
        readings.append(Reading(at, wh))
    return SessionUsage(started_at=START, ended_at=at, readings=readings)


@settings(max_examples=200, deadline=None)
@given(tariffs(), steps)
def test_total_is_the_sum_of_rounded_items(tariff: Tariff, step_list: list[tuple[int, D]]) -> None:
    priced = price_session(tariff, trace(step_list))
    assert priced.total == sum(i.amount for i in priced.items)
    assert priced.total == priced.net + priced.tax
    for item in priced.items:
        assert round_money(item.amount, tariff.currency) == item.amount
    if tariff.min_price is not None:
        assert priced.net >= round_money(tariff.min_price, tariff.currency)
    if tariff.max_price is not None:
        assert priced.net <= round_money(tariff.max_price, tariff.currency)


@settings(max_examples=200, deadline=None)
@given(tariffs(), steps)
def test_time_of_use_split_sums_to_the_energy(
    tariff: Tariff, step_list: list[tuple[int, D]]
) -> None:
    usage = trace(step_list)
    priced = price_session(tariff, usage)
    assert sum(priced.energy_wh_by_period.values()) == priced.energy_wh
    assert priced.energy_wh == usage.readings[-1].wh - usage.readings[0].wh
    energy_kwh = sum(i.quantity for i in priced.items if i.kind is ItemKind.ENERGY)
    assert energy_kwh * 1000 == priced.energy_wh


@settings(max_examples=200, deadline=None)
@given(tariffs(), steps, st.data())
def test_cost_never_decreases_as_energy_rises(
    tariff: Tariff, step_list: list[tuple[int, D]], data: st.DataObject
) -> None:
    more = data.draw(
        st.lists(
            st.decimals(min_value=0, max_value=5000, places=1),
            min_size=len(step_list),
            max_size=len(step_list),
        )
    )
    less = price_session(tariff, trace(step_list))
    again = price_session(tariff, trace(step_list, more))
    assert again.energy_wh >= less.energy_wh
    assert again.total >= less.total
