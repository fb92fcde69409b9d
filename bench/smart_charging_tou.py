"""Time of use, measured: the site-wide plan against charging at once on the same days.

    python -m bench.smart_charging_tou [--seeds 3] [--evs 40] [--levels 15,40]

Not a timed test (the defaults take under a minute here; the full sweep,
``--seeds 10 --levels 10,15,25,40,60,100``, about 8 minutes on a loaded
machine). The ACN-shaped workplace days of
:mod:`bench.smart_charging_quality` (same seeds, same EVs, same 5-minute steps,
a total power limit at ``level`` % of the EVs' summed maximum) on a site with a
daily tariff in UTC: 0.30 until 11:00, 0.12 from 11:00 to 15:00 (the solar
hours), 0.35 from 15:00. Three ways to run the site:

* ``at once``: the load manager without prices - the allocator (operator class,
  urgency, max-min fair) every step;
* ``site plan``: what the load manager does with prices
  (:mod:`smart_charging.tou_plan`): the site-wide plan is solved when an EV
  arrives or leaves and at every quarter hour (with the energy still missing),
  and each step the allocator runs with every planned EV capped at the plan's
  allowance for the current quarter hour (0 A: switched off, holding nothing).
  The plan counts the arrivals still to come as the site's last four weeks saw
  them: four other days of the same workload (seeds ``1000 + 10 * seed + w``),
  dated one to four weeks back;
* ``no history``: the same plan without that history (what a new site gets).

Per level (mean over seeds): energy delivered as % of the LP optimum (the most
any schedule can deliver by the departures), the mean price paid per kWh, and
the worst day's energy of the plan less that of charging at once (kWh; the
target: never below 0 beyond rounding), breaches of the limit.

What it shows (10 seeds): from a 25 % limit up the plan delivers the same energy
as charging at once (-0.05 kWh on the worst day: rounding) for 2 / 36 / 52 / 53 %
less per kWh at 25 / 40 / 60 / 100 %. At 10 / 15 % (more wanted than the site
can give) it delivers 99.18 / 99.24 % of the optimum against 99.90 / 99.96 % at
once, at the same price: the history is four other days, not this one. Without
the history (a new site) it is 96.54 / 95.65 %: energy moved to the cheap hours
early in the morning left capacity unused that later arrivals needed. The
history's energy is what each past EV wanted, capped at what its stay allowed
(the service reads what past sessions took).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections.abc import Sequence
from datetime import time as time_of_day
from datetime import timedelta

from bench.smart_charging_quality import (
    BASE,
    Present,
    _node,
    _sessions,
)
from bench.smart_charging_workload import (
    DAY_START_H,
    EV,
    STEP_H,
    STEPS,
    VOLTAGE,
    optimum_wh,
    workload,
)
from smart_charging.allocation import allocate
from smart_charging.model import SiteConfig, SiteTree
from smart_charging.shifting import PriceSchedule, TariffEntry
from smart_charging.site_plan import site_plan
from smart_charging.tou_plan import (
    HISTORY_WEEKS,
    Allowances,
    Need,
    PastSession,
    allowances,
    plan_input,
)

TARIFF = PriceSchedule(
    "UTC",
    (
        TariffEntry(time_of_day(0), 0.30),
        TariffEntry(time_of_day(11), 0.12),
        TariffEntry(time_of_day(15), 0.35),
    ),
)


def price_at(step: int) -> float:
    hour = DAY_START_H + step * STEP_H
    return 0.30 if hour < 11 else 0.12 if hour < 15 else 0.35


def _needs(present: Sequence[Present]) -> list[Need]:
    return [
        Need(
            p.ev.id,
            len(p.ev.phases),
            p.ev.max_a,
            BASE + timedelta(hours=DAY_START_H + p.ev.departure * STEP_H),
            p.remaining_wh,
            p.ev.energy_wh,
        )
        for p in present
    ]


def history(seed: int, n: int) -> list[PastSession]:
    """The site's last ``HISTORY_WEEKS`` weeks: other days of the workload, weeks back."""
    out = []
    for week in range(1, HISTORY_WEEKS + 1):
        day = BASE - timedelta(weeks=week)
        for ev in workload(1000 + 10 * seed + week, n):
            start = day + timedelta(hours=DAY_START_H + ev.arrival * STEP_H)
            end = day + timedelta(hours=DAY_START_H + ev.departure * STEP_H)
            taken = min(ev.energy_wh, ev.max_w * (end - start).total_seconds() / 3600)
            out.append(PastSession(start, end, taken, ev.max_w / 1000.0))
    return out


def simulate(
    evs: Sequence[EV],
    limit_w: float,
    planned: bool,
    remaining: dict[str, float] | None = None,
    past: Sequence[PastSession] = (),
) -> tuple[float, float, int]:
    """Energy delivered (Wh), its cost, and breaches: one day, at once or with the plan."""
    tree = SiteTree(SiteConfig("site", power_limit_kw=limit_w / 1000.0), prices=TARIFF)
    if remaining is None:
        remaining = {}
    remaining.update({ev.id: ev.energy_wh for ev in evs})
    limit_a = limit_w / VOLTAGE
    delivered = cost = 0.0
    breaches = 0
    caps: Allowances | None = None
    planned_for: tuple[int, frozenset[str]] | None = None
    for step in range(STEPS):
        present = [
            Present(ev, remaining[ev.id], step)
            for ev in evs
            if ev.arrival <= step < ev.departure and remaining[ev.id] > 1.0
        ]
        if not present:
            continue
        sessions = _sessions(present, True, lambda p: p.ev.arrival)
        if planned:
            now = BASE + timedelta(hours=DAY_START_H + step * STEP_H)
            key = (step // 3, frozenset(p.ev.id for p in present))  # quarter hour, who is here
            if key != planned_for:
                needs = _needs(present)
                problem = plan_input(tree, needs, now, 0.0, past)
                caps = None
                if problem is not None:
                    plan = site_plan(
                        problem.sessions + problem.expected,
                        problem.limit_kw,
                        problem.prices,
                        problem.hours,
                    )
                    caps = allowances(plan, problem, 6.0, needs)
                planned_for = key
            if caps is not None:
                sessions = [
                    dataclasses.replace(s, max_current=min(s.max_current, caps.caps_a[s.id]))
                    if s.id in caps.caps_a
                    else s
                    for s in sessions
                ]
        currents = allocate(_node(limit_a), sessions).currents
        total_w = 0.0
        for p in present:
            power = currents.get(p.ev.id, 0.0) * VOLTAGE * len(p.ev.phases)
            energy = min(power * STEP_H, remaining[p.ev.id])
            remaining[p.ev.id] -= energy
            delivered += energy
            cost += energy / 1000.0 * price_at(step)
            total_w += power
        breaches += total_w > limit_w * (1 + 1e-9)
    return delivered, cost, breaches


def tou_timing(sizes: Sequence[int], seed: int = 1) -> None:
    """Time the site-wide time-of-use LP (:mod:`smart_charging.site_plan`): 24 h of
    15-minute periods, a night/solar/evening price, sessions leaving in 1-24 h."""
    from smart_charging.site_plan import PlanSession, site_plan

    prices = [0.30] * 28 + [0.12] * 8 + [0.08] * 20 + [0.35] * 16 + [0.20] * 24  # 96 x 15 min
    for n in sizes:
        rng = random.Random(seed)
        sessions = [
            PlanSession(f"s{i}", rng.choice([7.36, 11.04]), rng.uniform(5, 30), rng.randint(4, 96))
            for i in range(n)
        ]
        limit = [0.25 * sum(s.max_kw for s in sessions)] * 96
        started = time.perf_counter()
        plan = site_plan(sessions, limit, prices, 0.25)
        took = time.perf_counter() - started
        wanted = sum(s.energy_kwh for s in sessions)
        print(
            f"site TOU plan: {n} sessions x 96 periods in {took:.2f} s; "
            f"{100 * plan.energy_kwh / wanted:.1f}% of the energy wanted, "
            f"mean price {plan.cost / max(plan.energy_kwh, 1e-9):.3f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evs", type=int, default=40, help="EVs a day")
    parser.add_argument("--levels", default="15,40", help="limits, % of summed max")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"time of use ({args.seeds} seeds x {args.evs} EVs; tariff 0.30 / 0.12 from 11:00 "
          "/ 0.35 from 15:00)")  # fmt: skip
    for level in (int(x) for x in args.levels.split(",")):
        rows = {"at once": [0.0, 0.0, 0], "site plan": [0.0, 0.0, 0], "no history": [0.0, 0.0, 0]}
        worst = float("inf")
        for seed in range(args.seeds):
            evs = workload(seed, args.evs)
            limit_w = level / 100 * sum(ev.max_w for ev in evs)
            best = optimum_wh(evs, limit_w)
            got = {}
            past = history(seed, args.evs)
            runs = (("at once", False, ()), ("site plan", True, past), ("no history", True, ()))
            for name, planned, seen in runs:
                energy, cost, breaches = simulate(evs, limit_w, planned, None, seen)
                got[name] = energy
                rows[name][0] += 100 * energy / best / args.seeds
                rows[name][1] += cost / (energy / 1000.0) / args.seeds
                rows[name][2] += breaches
            worst = min(worst, (got["site plan"] - got["at once"]) / 1000.0)
        once, plan, blind = rows["at once"], rows["site plan"], rows["no history"]
        print(
            f"level {level}%: at once {once[0]:.2f}% of optimum at {once[1]:.3f}/kWh, "
            f"site plan {plan[0]:.2f}% at {plan[1]:.3f}/kWh "
            f"({100 * (1 - plan[1] / once[1]):.1f}% cheaper), worst day plan - at once "
            f"{worst:+.2f} kWh; no history {blind[0]:.2f}% at {blind[1]:.3f}/kWh; "
            f"breaches {int(once[2] + plan[2] + blind[2])}",
            flush=True,
        )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
