"""How much energy smart charging delivers, against the LP optimum and classic schedulers.

    python -m bench.smart_charging_quality [--seeds 10] [--evs 40] [--levels 10,15,25,40,60,100]
    python -m bench.smart_charging_quality --e2e --seeds 2 --evs 20 [--speed 600]
        [--levels 10,15] [--policies fair,edf,llf,rr,fcfs] [--explain]

Not a timed test: a quality benchmark of the pure allocator
(:func:`smart_charging.allocation.allocate`), the way the load manager calls it
every 5 minutes, on workplace days shaped like the Caltech ACN data set.

Workload (seeded; one day per seed)
===================================
* ``--evs`` EVs a day (40); arrival time triangular between 07:00 and 10:00 (mode
  08:00); stay uniform 4-9 h (the departure cut at 19:30, the end of the day);
  energy wanted uniform 5-30 kWh (not capped by what the stay allows: an
  infeasible request counts against every scheduler, the optimum included);
* half single-phase 32 A (7.36 kW, on L1, L2 or L3 in turn), half three-phase
  16 A (11.04 kW); 230 V; minimum 6 A (a scheduler gives an EV 0 or >= 6 A);
* the departure time and the energy wanted are known at arrival (as the API's
  session preferences or ISO 15118 charging needs give them);
* 5-minute steps; in each an EV draws what it is given, up to its maximum and
  its remaining energy (it never overshoots);
* the site limit is a total power limit, ``level`` % of the EVs' summed maximum
  power, at levels 10 ... 100 %.

Schedulers (each step, on the EVs present that still want energy)
==================================================================
* ``allocator``: the load manager's allocator (its default policy ``fair``): operator
  class, deadline urgency (:mod:`smart_charging.urgency`), max-min fair in a class,
  what a class leaves under a minimum to its waiting session (:mod:`smart_charging.gaps`);
* ``fair``: the allocator without urgency (what it did before deadline-aware sharing);
* ``EDF`` / ``LLF`` / ``FCFS``: earliest departure / least laxity / first arrival
  first, each EV its maximum while it fits (``--e2e --policies edf,llf,fcfs`` runs
  the service's own greedy policies, :mod:`smart_charging.policies`, instead);
* ``RR``: round robin - equal shares, the order of admission rotating each step;
* ``LP``: the offline optimum (HiGHS): maximise the energy delivered by departure,
  knowing every arrival in advance and ignoring the 6 A minimum - an upper bound.

Per level (mean over seeds): energy delivered as % of requested and % of the
optimum, % of EVs fully served (>= 99 % of their request), Jain's fairness of
the served fractions, peak power / limit, and breaches (steps above the limit).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.smart_charging_workload import (
    EV,
    MIN_A,
    STEP_H,
    STEPS,
    VOLTAGE,
    jain,
    optimum_wh,
    workload,
)
from smart_charging.allocation import Node, Session, allocate
from smart_charging.urgency import HYSTERESIS_S as SERVICE_HYSTERESIS_S
from smart_charging.urgency import urgency_class

HYSTERESIS_S = SERVICE_HYSTERESIS_S  # the allocator's, as the service runs it (--hysteresis)
BASE = datetime(2026, 1, 5, tzinfo=UTC)
FILL_GAPS = True  # the fair policy's gap rule (smart_charging.gaps)


@dataclass
class Present:
    """An EV at the site in one step, as a scheduler sees it."""

    ev: EV
    remaining_wh: float
    step: int
    charging: bool = False  # it had current in the previous step (the urgency's hysteresis)

    @property
    def cap_a(self) -> float:
        """The most it can take this step: its maximum, or what completes it."""
        need = self.remaining_wh / (VOLTAGE * len(self.ev.phases) * STEP_H)
        return min(self.ev.max_a, need)

    @property
    def laxity_h(self) -> float:
        return (self.ev.departure - self.step) * STEP_H - self.remaining_wh / self.ev.max_w


Scheduler = Callable[[Sequence[Present], float, int], dict[str, float]]  # -> A per EV


def _node(limit_a_total: float) -> list[Node]:
    return [Node("site", None, total_limit=limit_a_total)]


def _sessions(
    present: Sequence[Present],
    urgency: bool,
    rank: Callable[[Present], float],
    full_keeps_share: bool = False,
) -> list[Session]:
    out = []
    for p in present:
        full = p.remaining_wh <= 1.0
        cap = p.ev.max_a if full and full_keeps_share else p.cap_a
        now = BASE + timedelta(hours=p.step * STEP_H)
        departure = BASE + timedelta(hours=p.ev.departure * STEP_H)
        g = 0
        if urgency:
            g = urgency_class(now, departure, p.remaining_wh, 0.0, p.ev.max_a, len(p.ev.phases),
                              charging=p.charging, hysteresis_s=HYSTERESIS_S)  # fmt: skip
        out.append(
            Session(
                id=p.ev.id, node="site", phases=p.ev.phases, max_current=cap,
                min_current=MIN_A, rank=rank(p), urgency=g, idle=full and not full_keeps_share,
            )
        )  # fmt: skip
    return out


def allocator(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
    sessions = _sessions(present, True, lambda p: p.ev.arrival)
    return dict(allocate(_node(limit), sessions, fill_gaps=FILL_GAPS).currents)


def fair(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
    sessions = _sessions(present, False, lambda p: p.ev.arrival)
    return dict(allocate(_node(limit), sessions).currents)


def service_before(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
    """The load manager before this change: a full EV still plugged in keeps its share
    (a 0 A draw never capped it), no urgency, admission in arrival order."""
    sessions = _sessions(present, False, lambda p: p.ev.arrival, full_keeps_share=True)
    return dict(allocate(_node(limit), sessions).currents)


def service_after(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
    """The load manager now: a full EV (it drew nothing) is idle - lowest class, its
    minimum at most; urgency within the class."""
    sessions = _sessions(present, True, lambda p: p.ev.arrival)
    return dict(allocate(_node(limit), sessions, fill_gaps=FILL_GAPS).currents)


def round_robin(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
    order = sorted(present, key=lambda p: p.ev.id)
    n = max(1, len(order))
    position = {p.ev.id: (i - step) % n for i, p in enumerate(order)}
    sessions = _sessions(present, False, lambda p: position[p.ev.id])
    return dict(allocate(_node(limit), sessions).currents)


def _greedy(key: Callable[[Present], float]) -> Scheduler:
    def schedule(present: Sequence[Present], limit: float, step: int) -> dict[str, float]:
        left = limit  # A summed over lines
        out = {}
        for p in sorted(present, key=lambda p: (key(p), p.ev.id)):
            lines = len(p.ev.phases)
            amps = min(p.cap_a, left / lines)
            if amps < min(MIN_A, p.cap_a) - 1e-9:
                amps = 0.0
            amps = int(amps * 10 + 1e-9) / 10  # 0.1 A, rounded down as profiles carry it
            out[p.ev.id] = amps
            left -= amps * lines
        return out

    return schedule


SCHEDULERS: dict[str, Scheduler] = {
    "allocator": allocator,
    "fair": fair,
    "EDF": _greedy(lambda p: p.ev.departure),
    "LLF": _greedy(lambda p: p.laxity_h),
    "RR": round_robin,
    "FCFS": _greedy(lambda p: p.ev.arrival),
}


# With EVs that stay plugged in after full: what the load manager sees (a full EV is
# still a session) against the baselines, which know each EV's remaining energy.
PLUGGED: dict[str, Scheduler] = {
    "service-after": service_after,
    "service-before": service_before,
    "EDF": SCHEDULERS["EDF"],
    "LLF": SCHEDULERS["LLF"],
}


@dataclass
class Outcome:
    delivered_wh: dict[str, float]
    peak_ratio: float
    breaches: int


def simulate(
    evs: Sequence[EV], limit_w: float, scheduler: Scheduler, plugged: bool = False
) -> Outcome:
    remaining = {ev.id: ev.energy_wh for ev in evs}
    limit_a = limit_w / VOLTAGE  # A summed over the three lines
    peak, breaches = 0.0, 0
    currents: dict[str, float] = {}
    for step in range(STEPS):
        present = [
            Present(ev, remaining[ev.id], step, currents.get(ev.id, 0.0) > 0.0)
            for ev in evs
            if ev.arrival <= step < ev.departure and (plugged or remaining[ev.id] > 1.0)
        ]
        if not present:
            continue
        currents = scheduler(present, limit_a, step)
        total_w = 0.0
        for p in present:
            amps = min(currents.get(p.ev.id, 0.0), p.ev.max_a)
            power = amps * VOLTAGE * len(p.ev.phases)
            energy = min(power * STEP_H, remaining[p.ev.id])
            remaining[p.ev.id] -= energy
            total_w += power
        peak = max(peak, total_w / limit_w)
        breaches += total_w > limit_w * (1 + 1e-9)
    return Outcome({ev.id: ev.energy_wh - remaining[ev.id] for ev in evs}, peak, breaches)


@dataclass
class Row:
    energy_pct: float = 0.0
    optimum_pct: float = 0.0
    served_pct: float = 0.0
    jain: float = 0.0
    peak: float = 0.0
    breaches: int = 0


def run(
    seeds: int, n: int, levels: Sequence[int], plugged: bool = False
) -> dict[int, dict[str, Row]]:
    schedulers = PLUGGED if plugged else SCHEDULERS
    table: dict[int, dict[str, Row]] = {}
    for level in levels:
        rows = {name: Row() for name in schedulers}
        for seed in range(seeds):
            evs = workload(seed, n)
            limit_w = level / 100 * sum(ev.max_w for ev in evs)
            requested = sum(ev.energy_wh for ev in evs)
            best = optimum_wh(evs, limit_w)
            for name, scheduler in schedulers.items():
                out = simulate(evs, limit_w, scheduler, plugged)
                got = sum(out.delivered_wh.values())
                fractions = [out.delivered_wh[ev.id] / ev.energy_wh for ev in evs]
                r = rows[name]
                r.energy_pct += 100 * got / requested / seeds
                r.optimum_pct += 100 * got / best / seeds
                r.served_pct += 100 * sum(f >= 0.99 for f in fractions) / len(evs) / seeds
                r.jain += jain(fractions) / seeds
                r.peak = max(r.peak, out.peak_ratio)
                r.breaches += out.breaches
        table[level] = rows
    return table


def _print(title: str, table: dict[int, dict[str, Row]]) -> None:
    print(title)
    for level, rows in table.items():
        breaches = sum(r.breaches for r in rows.values())
        parts = ", ".join(f"{name} {r.optimum_pct:.2f}%" for name, r in rows.items())
        print(f"level {level}%: {parts}, breaches {breaches}")
    print()
    header = f"{'level':>5} {'scheduler':<14} {'energy%req':>10} {'%optimum':>9} "
    print(header + f"{'served%':>8} {'jain':>6} {'peak/limit':>10} {'breaches':>8}")
    for level, rows in table.items():
        for name, r in rows.items():
            print(
                f"{level:>4}% {name:<14} {r.energy_pct:>10.1f} {r.optimum_pct:>9.2f} "
                f"{r.served_pct:>8.1f} {r.jain:>6.3f} {r.peak:>10.3f} {r.breaches:>8}"
            )
    print()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--evs", type=int, default=40, help="EVs a day")
    parser.add_argument("--levels", default="10,15,25,40,60,100", help="limits, %% of summed max")
    parser.add_argument("--tou", action="store_true", help="time the site-wide TOU LP only")
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="through the real CSMS and simulated chargers (bench/smart_charging_e2e.py)",
    )
    parser.add_argument("--speed", type=float, default=600.0, help="--e2e: simulated s per real s")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="--e2e: where the unused capacity went, by cause (bench/smart_charging_loss.py)",
    )
    parser.add_argument(
        "--first-seed", type=int, default=0, help="--e2e: run seeds first-seed .. + seeds - 1"
    )
    parser.add_argument(
        "--no-steady",
        action="store_true",
        help="--e2e: leave the process's garbage collections in the simulated time "
        "(as before bench/smart_charging_stalls.py)",
    )
    parser.add_argument(
        "--policies",
        default="fair,edf,llf",
        help="--e2e: the sites' allocation policies to run end to end, each on the same days "
        "(fair = the service's own; edf, llf, fcfs, rr: the classic greedy orders; "
        "fair-strict: fair without the gap rule, an ablation)",
    )
    args = parser.parse_args(argv)
    if args.tou:
        from bench.smart_charging_tou import tou_timing

        tou_timing([100, 1000])
        return
    levels = [int(x) for x in args.levels.split(",")]
    if args.e2e:
        from bench.smart_charging_e2e import E2EOptions
        from bench.smart_charging_e2e_runs import main_e2e, parse_policies

        try:
            policies = parse_policies(args.policies)
        except ValueError as e:
            parser.error(str(e))
        options = E2EOptions(
            speed=args.speed,
            explain=args.explain,
            steady=not args.no_steady,
            first_seed=args.first_seed,
        )
        main_e2e(args.seeds, args.evs, levels, options, policies)
        return
    started = time.perf_counter()
    common = f"{args.seeds} seeds x {args.evs} EVs, 5-min steps; % of the LP optimum"
    _print(f"pure allocator ({common}); 'fair' = before deadline-aware sharing",
           run(args.seeds, args.evs, levels))  # fmt: skip
    _print(f"EVs stay plugged in after full ({common})",
           run(args.seeds, args.evs, levels, plugged=True))  # fmt: skip
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
