"""How long pricing one session takes (billing.pricing.price_session, pure, no I/O).

A session of ``--hours`` with a register sample every ``--interval`` seconds,
power samples as often, a SuspendedEV at 80 % of the session, priced with a
Berlin tariff of three time-of-use periods; prints the median and p95 time
per session over ``--runs`` runs. Pricing runs inside the transaction that
ends a session, so this is time a StopTransaction / TransactionEvent(Ended)
answer waits for.

    .venv/bin/python -m bench.billing_pricing --hours 12 --interval 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from decimal import Decimal

from billing.activity import PowerSample, StateChange
from billing.energy import Reading
from billing.pricing import SessionUsage, price_session
from billing.tariff import Tariff, TouPeriod

TARIFF = Tariff(
    currency="EUR",
    time_zone="Europe/Berlin",
    price_per_kwh=Decimal("0.39"),
    price_per_charging_minute=Decimal("0.01"),
    price_per_parking_minute=Decimal("0.10"),
    parking_grace_minutes=Decimal(30),
    flat_fee=Decimal("0.50"),
    max_price=Decimal(80),
    vat_rate=Decimal("0.19"),
    periods=(
        TouPeriod("peak", Decimal("0.49"), wall(7), wall(11), frozenset(range(5))),
        TouPeriod("evening", Decimal("0.55"), wall(17), wall(21), frozenset(range(5))),
        TouPeriod("night", Decimal("0.25"), wall(23), wall(6)),
    ),
)


def session(hours: float, interval: int) -> SessionUsage:
    start = datetime(2026, 3, 28, 18, 0, tzinfo=UTC)  # across Berlin's DST night
    count = int(hours * 3600 / interval)
    step = timedelta(seconds=interval)
    wh_per_step = Decimal(11000 * interval) / 3600  # 11 kW
    readings = [
        Reading(start + i * step, Decimal(100000) + i * wh_per_step) for i in range(count + 1)
    ]
    power = [PowerSample(start + i * step, Decimal(11000)) for i in range(count + 1)]
    states = [
        StateChange(start, "Charging"),
        StateChange(start + count * step * 4 / 5, "SuspendedEV"),
    ]
    return SessionUsage(start, start + count * step, readings, states, power, Decimal(22000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--interval", type=int, default=10, help="seconds between samples")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    usage = session(args.hours, args.interval)
    times = []
    for _ in range(args.runs):
        began = time.perf_counter()
        priced = price_session(TARIFF, usage)
        times.append(time.perf_counter() - began)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"session: {args.hours} h, {len(usage.readings)} register readings, "
          f"{len(usage.power)} power samples")  # fmt: skip
    print(f"priced:  {priced.energy_wh / 1000:.3f} kWh, total {priced.total} {priced.currency}, "
          f"{len(priced.items)} lines, periods {sorted(priced.energy_wh_by_period)}")  # fmt: skip
    print(f"time per session: median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.1f} ms ({args.runs} runs)")  # fmt: skip


if __name__ == "__main__":
    main()
