"""Golden cases of billing.pricing, each worked out by hand in its docstring."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest

from billing.activity import PowerSample, StateChange
from billing.energy import MeterFlag, Reading
from billing.pricing import ItemKind, PricedSession, SessionUsage, price_session
from billing.tariff import Tariff, TouPeriod, price_segments


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def usage(*readings: tuple[str, float], **kwargs: object) -> SessionUsage:
    points = [Reading(at(t), D(repr(wh))) for t, wh in readings]
    return SessionUsage(
        started_at=kwargs.pop("started_at", points[0].at),  # type: ignore[arg-type]
        ended_at=kwargs.pop("ended_at", points[-1].at),  # type: ignore[arg-type]
        readings=points,
        **kwargs,  # type: ignore[arg-type]
    )


def amounts(priced: PricedSession) -> dict[str, D]:
    return {i.description: i.amount for i in priced.items}


def test_flat_per_kwh_rounds_half_even() -> None:
    """12 312.5 Wh x 0.40 EUR/kWh = 4.925 -> 4.92 (half-even; half-up would say 4.93)."""
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.40"))
    priced = price_session(
        tariff, usage(("2026-01-14 10:00", 1000.0), ("2026-01-14 11:00", 13312.5))
    )
    assert priced.energy_wh == D("12312.5")
    assert [(i.kind, i.quantity, i.amount) for i in priced.items] == [
        (ItemKind.ENERGY, D("12.3125"), D("4.92"))
    ]
    assert priced.total == D("4.92") and priced.flags == frozenset()


def test_zero_minor_units_currency() -> None:
    """12.35 kWh x 30 JPY = 370.5 -> 370 yen (half-even, yen has no minor unit)."""
    tariff = Tariff(currency="JPY", price_per_kwh=D(30))
    priced = price_session(tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 11:00", 12350.0)))
    assert priced.total == D("370")


NIGHT_AND_PEAK = Tariff(
    currency="EUR",
    time_zone="Europe/Berlin",
    price_per_kwh=D("0.30"),
    periods=(TouPeriod("peak", D("0.50"), time(7), time(22), frozenset(range(5))),),
)


def test_time_of_use_across_a_boundary_is_interpolated() -> None:
    """Wed 14 Jan 2026, Berlin is UTC+1: peak ends 22:00 local = 21:00Z.

    Steps: 20:30-20:50 6000 Wh (peak), 20:50-21:10 3000 Wh split at 21:00 half
    and half, 21:10-21:30 1000 Wh (base). Peak 7500 Wh x 0.50 = 3.75, base
    2500 Wh x 0.30 = 0.75; total 4.50.
    """
    priced = price_session(
        NIGHT_AND_PEAK,
        usage(
            ("2026-01-14 20:30", 0.0),
            ("2026-01-14 20:50", 6000.0),
            ("2026-01-14 21:10", 9000.0),
            ("2026-01-14 21:30", 10000.0),
        ),
    )
    assert priced.energy_wh_by_period == {"peak": D(7500), "base": D(2500)}
    assert amounts(priced) == {"energy (peak)": D("3.75"), "energy (base)": D("0.75")}
    assert priced.total == D("4.50")


def test_weekend_has_no_peak() -> None:
    """Sat 17 Jan 2026 at noon: the peak period is Mon-Fri only, 10 kWh x 0.30 = 3.00."""
    priced = price_session(
        NIGHT_AND_PEAK, usage(("2026-01-17 11:00", 0.0), ("2026-01-17 12:00", 10000.0))
    )
    assert priced.energy_wh_by_period == {"base": D(10000)} and priced.total == D("3.00")


def test_idle_after_grace_by_state() -> None:
    """10:00-12:00Z, Charging then SuspendedEV (EV full) at 11:00: 60 min charging, 60 idle.

    Charging 60 min x 0.05 = 3.00; parking (60 - 30 grace) min x 0.10 = 3.00.
    """
    tariff = Tariff(
        currency="EUR",
        price_per_charging_minute=D("0.05"),
        price_per_parking_minute=D("0.10"),
        parking_grace_minutes=D(30),
    )
    states = [StateChange(at("2026-01-14 10:00"), "Charging"),
              StateChange(at("2026-01-14 11:00"), "SuspendedEV")]  # fmt: skip
    priced = price_session(
        tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 12:00", 20000.0), states=states)
    )
    assert priced.charging_time == timedelta(minutes=60)
    assert priced.parking_time == timedelta(minutes=60)
    assert amounts(priced) == {
        "energy (base)": D("0.00"),
        "charging time": D("3.00"),
        "parking time after 30 min grace": D("3.00"),
    }


def test_idle_by_power_and_operator_pause_is_not_idle() -> None:
    """Power 11 kW from 10:00, 0 W from 11:15 -> idle 45 min, 15 min past grace x 0.10 = 1.50.

    A SuspendedEVSE stretch (11:30-11:45 here, the charger withholding power)
    would be idle by power, but is charging time: the driver did not cause it.
    """
    tariff = Tariff(currency="EUR", price_per_parking_minute=D("0.10"), parking_grace_minutes=D(30))
    power = [PowerSample(at("2026-01-14 10:00"), D(11000)),
             PowerSample(at("2026-01-14 11:15"), D(0))]  # fmt: skip
    states = [StateChange(at("2026-01-14 11:30"), "SuspendedEVSE"),
              StateChange(at("2026-01-14 11:45"), "Charging")]  # fmt: skip
    priced = price_session(
        tariff,
        usage(("2026-01-14 10:00", 0.0), ("2026-01-14 12:00", 13750.0), power=power),
    )
    assert priced.parking_time == timedelta(minutes=45)
    assert amounts(priced)["parking time after 30 min grace"] == D("1.50")
    paused = price_session(
        tariff,
        usage(("2026-01-14 10:00", 0.0), ("2026-01-14 12:00", 1.0), power=power, states=states),
    )
    # idle 11:15-11:30 and (Charging at 0 W) 11:45-12:00: 30 min, all within grace
    assert paused.parking_time == timedelta(minutes=30)
    assert amounts(paused)["parking time after 30 min grace"] == D("0.00")


def test_minimum_price_tops_up_and_maximum_caps_before_tax() -> None:
    """1 kWh x 0.30 = 0.30 < min 2.00: +1.70. 50 kWh x 0.30 = 15.00 > max 10.00: -5.00.

    Tax 19 % on the capped net 10.00 = 1.90; total 11.90.
    """
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.30"), min_price=D(2), max_price=D(10),
                    vat_rate=D("0.19"))  # fmt: skip
    small = price_session(tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 10:10", 1000.0)))
    assert amounts(small)["minimum price"] == D("1.70")
    assert small.net == D("2.00") and small.tax == D("0.38") and small.total == D("2.38")
    big = price_session(tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 13:00", 50000.0)))
    assert amounts(big)["maximum price"] == D("-5.00")
    assert big.net == D("10.00") and big.tax == D("1.90") and big.total == D("11.90")


def test_tax_is_rounded_half_even_on_the_rounded_net() -> None:
    """Net 10 kWh x 0.25 = 2.50; VAT 21 % = 0.525 -> 0.52 (half-even); total 3.02.

    Second case: 7.3 kWh x 0.35 = 2.555 -> 2.56, fee 0.99, net 3.55; 19 % =
    0.6745 -> 0.67; total 4.22.
    """
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.25"), vat_rate=D("0.21"))
    priced = price_session(tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 11:00", 10000.0)))
    assert (priced.net, priced.tax, priced.total) == (D("2.50"), D("0.52"), D("3.02"))
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.35"), flat_fee=D("0.99"), vat_rate=D("0.19"))
    priced = price_session(tariff, usage(("2026-01-14 10:00", 0.0), ("2026-01-14 11:00", 7300.0)))
    assert amounts(priced)["energy (base)"] == D("2.56")
    assert (priced.net, priced.tax, priced.total) == (D("3.55"), D("0.67"), D("4.22"))


NIGHT = Tariff(
    currency="EUR",
    time_zone="Europe/Berlin",
    price_per_kwh=D("0.40"),
    periods=(TouPeriod("night", D("0.20"), time(22), time(6)),),
)


def _hourly(start: str, hours: int) -> SessionUsage:
    first = at(start)
    return SessionUsage(
        started_at=first,
        ended_at=first + timedelta(hours=hours),
        readings=[Reading(first + timedelta(hours=h), D(1000 * h)) for h in range(hours + 1)],
    )


def test_dst_spring_forward_night() -> None:
    """29 Mar 2026: Berlin jumps 02:00 CET -> 03:00 CEST at 01:00Z; night ends 06:00 CEST = 04:00Z.

    1 kWh per hour from 23:00Z (00:00 CET) to 05:00Z (07:00 CEST): 5 kWh at
    night x 0.20 = 1.00, 1 kWh day x 0.40 = 0.40; total 1.40 (a fixed UTC+1
    would bill 6 kWh at night: 1.20).
    """
    priced = price_session(NIGHT, _hourly("2026-03-28 23:00", 6))
    assert priced.energy_wh_by_period == {"night": D(5000), "base": D(1000)}
    assert priced.total == D("1.40")


def test_dst_fall_back_night() -> None:
    """25 Oct 2026: 03:00 CEST -> 02:00 CET at 01:00Z; night ends 06:00 CET = 05:00Z.

    1 kWh per hour from 22:00Z (00:00 CEST) to 06:00Z (07:00 CET): 7 kWh night
    (the repeated hour included) x 0.20 = 1.40, 1 kWh day 0.40; total 1.80.
    """
    priced = price_session(NIGHT, _hourly("2026-10-24 22:00", 8))
    assert priced.energy_wh_by_period == {"night": D(7000), "base": D(1000)}
    assert priced.total == D("1.80")


def test_period_starting_at_a_time_that_does_not_exist_starts_when_clocks_jump() -> None:
    """02:30-05:00 on 29 Mar 2026: 02:30 never happens, the wall clock is past it from 03:00
    CEST (01:00Z) to 05:00 CEST (03:00Z)."""
    tariff = Tariff(
        currency="EUR",
        time_zone="Europe/Berlin",
        periods=(TouPeriod("early", D("0.10"), time(2, 30), time(5)),),
    )
    segments = price_segments(tariff, at("2026-03-28 23:00"), at("2026-03-29 06:00"))
    assert [(s.start, s.end, s.period) for s in segments] == [
        (at("2026-03-28 23:00"), at("2026-03-29 01:00"), None),
        (at("2026-03-29 01:00"), at("2026-03-29 03:00"), "early"),
        (at("2026-03-29 03:00"), at("2026-03-29 06:00"), None),
    ]


@pytest.mark.parametrize(
    ("readings", "flags", "billed_wh"),
    [
        # 100 -> 80 backwards: nothing billed until the register passes 100 again
        ([100.0, 80.0, 150.0], {MeterFlag.BACKWARDS}, 50),
        # 1000 -> 999: rounding (e.g. an integer meterStop after a rounded sample)
        ([500.0, 600.0, 599.0], set(), 99),
        # 1100 -> 20 reset: 100 before, the restarted register's 20, then 30 more
        ([1000.0, 1100.0, 20.0, 50.0], {MeterFlag.RESET}, 150),
        # 2 kWh in one minute on an 11 kW connector (120 kW): that step is refused
        ([0.0, 100.0, 2100.0, 2200.0], {MeterFlag.JUMP}, 200),
        ([100.0], {MeterFlag.NO_DATA}, 0),
    ],
)
def test_meter_anomalies_are_flagged_and_not_billed(
    readings: list[float], flags: set[MeterFlag], billed_wh: int
) -> None:
    start = at("2026-01-14 10:00")
    points = [Reading(start + timedelta(minutes=i), D(repr(wh))) for i, wh in enumerate(readings)]
    tariff = Tariff(currency="EUR", price_per_kwh=D(1))
    priced = price_session(tariff, SessionUsage(start, points[-1].at, points, max_power_w=D(11000)))
    assert priced.flags == flags
    assert priced.energy_wh == billed_wh


def test_tariff_refuses_negative_prices_and_unknown_currency() -> None:
    with pytest.raises(ValueError, match="negative"):
        Tariff(currency="EUR", price_per_kwh=D("-0.1"))
    with pytest.raises(ValueError, match="unknown currency"):
        Tariff(currency="XXX")


def test_the_readme_example() -> None:
    """README "Billing": Wed 14 Jan 2026, 20:30-23:30 in Berlin (19:30Z-22:30Z).

    Peak (Mon-Fri 07:00-22:00 local, until 21:00Z): 10 000 Wh + 30/40 of the
    6 000 Wh step 20:30Z-21:10Z = 14 500 Wh x 0.49 = 7.105 -> 7.10; base:
    1 500 + 2 000 = 3 500 Wh x 0.39 = 1.365 -> 1.36; SuspendedEV from 21:30Z:
    60 min idle - 30 grace = 30 min x 0.10 = 3.00; fee 0.50. Net 11.96, VAT
    19 % 2.2724 -> 2.27, total 14.23.
    """
    tariff = Tariff(
        currency="EUR",
        time_zone="Europe/Berlin",
        price_per_kwh=D("0.39"),
        price_per_parking_minute=D("0.10"),
        parking_grace_minutes=D(30),
        flat_fee=D("0.50"),
        min_price=D("1.00"),
        max_price=D("50.00"),
        vat_rate=D("0.19"),
        periods=(TouPeriod("peak", D("0.49"), time(7), time(22), frozenset(range(5))),),
    )
    states = [StateChange(at("2026-01-14 19:30"), "Charging"),
              StateChange(at("2026-01-14 21:30"), "SuspendedEV")]  # fmt: skip
    priced = price_session(
        tariff,
        usage(
            ("2026-01-14 19:30", 10000.0),
            ("2026-01-14 20:30", 20000.0),
            ("2026-01-14 21:10", 26000.0),
            ("2026-01-14 21:30", 28000.0),
            ("2026-01-14 22:30", 28000.0),
            states=states,
        ),
    )
    assert amounts(priced) == {
        "session fee": D("0.50"),
        "energy (peak)": D("7.10"),
        "energy (base)": D("1.36"),
        "parking time after 30 min grace": D("3.00"),
        "VAT 19 %": D("2.27"),
    }
    assert (priced.net, priced.total) == (D("11.96"), D("14.23"))


def test_a_sample_at_the_stop_time_with_another_value_is_billed_not_flagged() -> None:
    """The last sample (12 000 Wh, a rounded kWh register) and meterStop (12 345 Wh) share
    the stop's timestamp: the same instant read twice, not 345 Wh in zero seconds. The
    stop reading comes last (billing.usage puts it there); 12 345 Wh are billed."""
    readings = [
        ("2026-01-14 10:00", 0.0),
        ("2026-01-14 10:30", 6000.0),
        ("2026-01-14 11:00", 12000.0),
        ("2026-01-14 11:00", 12345.0),
    ]
    priced = price_session(
        Tariff(currency="EUR", price_per_kwh=D("0.40")),
        usage(*readings, max_power_w=D(22_000)),
    )
    assert priced.energy_wh == D(12345) and priced.flags == frozenset()
    assert priced.meter_stop_wh == D(12345)


def test_a_jump_at_one_instant_is_still_a_jump() -> None:
    """Zero seconds do not excuse a jump: judged over the time since the last earlier
    reading, 1 000 000 Wh in 30 min is far beyond 22 kW."""
    priced = price_session(
        Tariff(currency="EUR", price_per_kwh=D("0.40")),
        usage(
            ("2026-01-14 10:00", 0.0),
            ("2026-01-14 10:30", 6000.0),
            ("2026-01-14 10:30", 1_006_000.0),
            max_power_w=D(22_000),
        ),
    )
    assert MeterFlag.JUMP in priced.flags and priced.energy_wh == D(6000)
