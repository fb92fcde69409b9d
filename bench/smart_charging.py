"""Re-plan benchmark: how long one allocation of a big site takes.

    python -m bench.smart_charging [--sessions 1000 10000] [--repeat 5] [--seed 1]

A site with three nesting levels under it (feeders -> circuits -> chargers,
then one node per connector), every limit binding somewhere: the site feeds
half of what the sessions ask (16 A each), feeders and circuits a bit more than
their share, a mix of 3- and 1-phase sessions (single-phase ones on L1), three
priority classes (10 % above the default), a quarter of the EVs capped by what
they really draw and 1 % uncontrolled (set aside at 16 A). Each re-plan is what the
real-time loop runs for a site: :func:`smart_charging.model.build_problem`
(tree and uncontrolled load) and :func:`smart_charging.allocation.allocate`.
It prints the median and the worst wall time per re-plan, the median CPU time
(the figure to compare on a shared machine) and how many sessions were paused.
Then the time-of-use part of a plan if every session had a departure time on
a site with a price schedule: the site-wide plan as the load manager solves it
(:mod:`smart_charging.tou_plan`: quarter hours to the last departure, a
three-entry daily tariff, departures 4-14 h away), with its time limit
(``SOLVE_TIMEOUT_S``; past it the site charges at once).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day

from smart_charging.allocation import allocate
from smart_charging.model import (
    ChargerPlace,
    GroupConfig,
    LiveSession,
    SiteConfig,
    SiteTree,
    build_problem,
)
from smart_charging.shifting import PriceSchedule, TariffEntry
from smart_charging.site_plan import site_plan
from smart_charging.tou_plan import SOLVE_TIMEOUT_S, Need, allowances, plan_input

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_site(sessions: int, rng: random.Random) -> tuple[SiteTree, list[LiveSession]]:
    """A site of ``sessions`` busy 2-connector chargers, 10 per circuit, 10 circuits a feeder."""
    chargers = (sessions + 1) // 2
    circuits = max(1, chargers // 10)
    feeders = max(1, circuits // 10)
    asked = sessions * 16.0  # A per line if every session got 16 A
    groups = [
        GroupConfig(f"feeder-{f}", None, phase_limit_a=asked / feeders / 2.5)
        for f in range(feeders)
    ]
    groups += [
        GroupConfig(f"circuit-{c}", f"feeder-{c % feeders}", phase_limit_a=asked / circuits / 2.0)
        for c in range(circuits)
    ]
    places = [
        ChargerPlace(f"CP-{i:05d}", f"circuit-{i % circuits}", max_current_a=32.0, priority=0)
        for i in range(chargers)
    ]
    site = SiteConfig("bench", phase_limit_a=asked / 2.0, power_limit_kw=asked * 0.23 * 2.5)
    live = []
    for n in range(sessions):
        live.append(
            LiveSession(
                charge_point_id=f"CP-{n // 2:05d}",
                evse_id=1 + n % 2,
                transaction_id=str(n),
                rank=float(rng.randrange(100_000)),
                phases=rng.choice([3, 3, 3, 1]),
                priority=rng.choices([0, 1, 2], weights=[90, 7, 3])[0],
                observed_max=rng.choice([None, None, None, rng.uniform(4.0, 14.0)]),
                uncontrolled_draw=16.0 if rng.random() < 0.01 else None,
            )
        )
    return SiteTree(site, tuple(groups), tuple(places)), live


def replan_seconds(tree: SiteTree, live: list[LiveSession]) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, nodes, sessions paused) of one re-plan."""
    started, cpu = time.perf_counter(), time.process_time()
    problem = build_problem(tree, live, NOW)
    currents = allocate(problem.nodes, problem.sessions, fill_gaps=problem.fill_gaps).currents
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    paused = sum(1 for a in currents.values() if a == 0.0)
    return elapsed, cpu, len(problem.nodes), paused


def tou_seconds(tree: SiteTree, n: int, rng: random.Random) -> tuple[float, str]:
    """Wall time of the site-wide time-of-use plan for ``n`` sessions, and what came out."""
    prices = PriceSchedule(
        "Europe/Paris",
        (
            TariffEntry(time_of_day(0), 0.12),
            TariffEntry(time_of_day(7), 0.30),
            TariffEntry(time_of_day(22), 0.15),
        ),
    )
    tree = SiteTree(tree.site, tree.groups, tree.chargers, prices)
    now = datetime(2026, 1, 15, 17, 30, tzinfo=UTC)
    needs = [
        Need(f"s{i}", 3, 16.0, now + timedelta(hours=rng.uniform(4, 14)), rng.uniform(5e3, 6e4))
        for i in range(n)
    ]
    started = time.perf_counter()
    problem = plan_input(tree, needs, now, 0.0)
    assert problem is not None
    try:
        plan = site_plan(
            problem.sessions, problem.limit_kw, problem.prices, problem.hours, SOLVE_TIMEOUT_S
        )
    except ValueError as error:
        return time.perf_counter() - started, f"no plan ({error}): the site charges at once"
    took = time.perf_counter() - started
    result = allowances(plan, problem, 6.0, needs)
    off = sum(1 for a in result.caps_a.values() if a == 0.0)
    missed = sum(1 for ok in result.feasible.values() if not ok)
    periods = len(problem.starts)
    return took, f"{periods} periods, {off} switched off now, {missed} cannot be met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for n in args.sessions:
        tree, live = make_site(n, random.Random(args.seed))
        times, cpu_times = [], []
        nodes = paused = 0
        for _ in range(args.repeat):
            elapsed, cpu, nodes, paused = replan_seconds(tree, live)
            times.append(elapsed)
            cpu_times.append(cpu)
        print(
            f"{n:>6} sessions, {nodes} nodes (site, {len(tree.groups)} groups, "
            f"{len(tree.chargers)} chargers, connectors): re-plan median "
            f"{statistics.median(times) * 1000:.1f} ms "
            f"(CPU {statistics.median(cpu_times) * 1000:.1f} ms), "
            f"worst {max(times) * 1000:.1f} ms over {args.repeat} runs; "
            f"{paused} sessions paused",
            flush=True,
        )
        took, outcome = tou_seconds(tree, n, random.Random(args.seed))
        print(
            f"{n:>6} sessions with a departure: site time-of-use plan in {took:.2f} s ({outcome})",
            flush=True,
        )


if __name__ == "__main__":
    main()
