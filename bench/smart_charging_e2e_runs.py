"""The end-to-end benchmark's runs and report: levels x seeds x allocation policies.

    python -m bench.smart_charging_quality --e2e [--seeds 2] [--evs 20] [--levels 10,15]
        [--policies fair,edf,llf] [--speed 600] [--explain]

Every policy runs the same seeded days (same EVs, same clock) through the same
harness (:func:`bench.smart_charging_e2e.run_day`): the site's
``allocation_policy`` is all that differs (:mod:`smart_charging.policies`:
``fair`` is the service's own rule, ``edf``, ``llf``, ``fcfs``, ``round-robin``
the classic greedy orders). The days are interleaved - level, seed, then each
policy in turn - so a loaded machine weighs on every policy alike. The pure
5-minute-step schedulers (:mod:`bench.smart_charging_quality`) are printed beside
them on the same seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from bench.smart_charging_e2e import Database, E2EOptions, run_day
from bench.smart_charging_loss import CAUSES
from bench.smart_charging_quality import SCHEDULERS as PURE
from bench.smart_charging_quality import Row, simulate
from bench.smart_charging_workload import EV, jain, optimum_wh, workload
from csms.config import LogFormat
from csms.logs import configure_logging
from smart_charging import model

# --policies names -> the site's allocation_policy, and how a line names its result.
POLICY_NAMES = {"fair": "fair", "edf": "edf", "llf": "llf", "fcfs": "fcfs", "rr": "round-robin",
                "round-robin": "round-robin", "fair-strict": "fair-strict"}  # fmt: skip
LABELS = {"fair": "service", "edf": "EDF e2e", "llf": "LLF e2e", "round-robin": "RR e2e",
          "fcfs": "FCFS e2e", "fair-strict": "fair, no gap rule"}  # fmt: skip
# An ablation, not a policy a site can have: ``fair`` without the gap rule
# (smart_charging/gaps.py), the CSMS in this process told so for that day.
ABLATIONS = {"fair-strict": "fair"}
PURE_OF = {"round-robin": "RR", "fcfs": "FCFS"}  # pure schedulers printed when asked
DEFAULT_POLICIES = ("fair", "edf", "llf")


@contextlib.asynccontextmanager
async def _gap_rule(on: bool) -> AsyncIterator[None]:
    """The load manager of this process with (the default) or without the gap rule."""
    if on:
        yield
        return
    saved = model.fills_gaps
    model.fills_gaps = lambda policy: False
    try:
        yield
    finally:
        model.fills_gaps = saved


def parse_policies(text: str) -> tuple[str, ...]:
    """``fair,edf,llf`` -> the sites' allocation policies (``rr`` = ``round-robin``)."""
    out = []
    for name in (x.strip().lower() for x in text.split(",") if x.strip()):
        if name not in POLICY_NAMES:
            raise ValueError(f"unknown policy {name!r}: one of {', '.join(POLICY_NAMES)}")
        if POLICY_NAMES[name] not in out:
            out.append(POLICY_NAMES[name])
    if not out:
        raise ValueError("no policy")
    return tuple(out)


@dataclass
class PolicyResult:
    """One policy end to end at one level (means over the seeds)."""

    row: Row = field(default_factory=Row)
    stored_pct: float = 0.0  # CSMS-stored energy as % of requested (cross-check)
    samples: int = 0
    real_s: float = 0.0
    unused_wh: dict[str, float] = field(default_factory=dict)  # mean per day, by cause
    gap_wh: float = 0.0  # optimum less delivered, mean per day
    days: list[float] = field(default_factory=list)  # % of the optimum, per seed in order


@dataclass
class LevelResult:
    e2e: dict[str, PolicyResult]  # allocation policy -> its result
    pure: dict[str, Row]


def pure_names(policies: Sequence[str]) -> list[str]:
    return ["allocator", "EDF", "LLF"] + [PURE_OF[p] for p in policies if p in PURE_OF]


def _add(r: Row, delivered: dict[str, float], evs: Sequence[EV], best: float, seeds: int) -> None:
    requested = sum(ev.energy_wh for ev in evs)
    got = sum(delivered.values())
    fractions = [min(1.0, delivered[ev.id] / ev.energy_wh) for ev in evs]
    r.energy_pct += 100 * got / requested / seeds
    r.optimum_pct += 100 * got / best / seeds
    r.served_pct += 100 * sum(f >= 0.99 for f in fractions) / len(evs) / seeds
    r.jain += jain(fractions) / seeds


async def run_e2e(
    seeds: int,
    n: int,
    levels: Sequence[int],
    o: E2EOptions,
    policies: Sequence[str] = DEFAULT_POLICIES,
    verbose: bool = True,
) -> dict[int, LevelResult]:
    db = Database()
    await db.start()
    out: dict[int, LevelResult] = {}
    names = pure_names(policies)
    try:
        for level in levels:
            result = LevelResult({p: PolicyResult() for p in policies}, {x: Row() for x in names})
            for seed in range(o.first_seed, o.first_seed + seeds):
                evs = workload(seed, n)
                limit_w = level / 100 * sum(ev.max_w for ev in evs)
                best = optimum_wh(evs, limit_w)
                requested = sum(e.energy_wh for e in evs)
                for policy in policies:
                    site_policy = ABLATIONS.get(policy, policy)
                    async with db.fresh() as dsn, _gap_rule(policy not in ABLATIONS):
                        day = await run_day(
                            dsn, evs, limit_w, dataclasses.replace(o, policy=site_policy)
                        )
                    r = result.e2e[policy]
                    _add(r.row, day.delivered_wh, evs, best, seeds)
                    r.row.peak = max(r.row.peak, day.peak_ratio)
                    r.row.breaches += day.breaches
                    r.stored_pct += 100 * day.stored_wh / requested / seeds
                    r.samples += day.samples
                    r.real_s += day.real_s
                    r.gap_wh += (best - sum(day.delivered_wh.values())) / seeds
                    for cause, wh in (day.unused_wh or {}).items():
                        r.unused_wh[cause] = r.unused_wh.get(cause, 0.0) + wh / seeds
                    r.days.append(100 * sum(day.delivered_wh.values()) / best)
                    if verbose:
                        got = r.days[-1]
                        fair_spread = jain([min(1.0, day.delivered_wh[e.id] / e.energy_wh)
                                            for e in evs])  # fmt: skip
                        print(f"  level {level}% seed {seed} {LABELS[policy]}: {day.real_s:.0f} s "
                              f"real, {got:.2f}% of optimum, jain {fair_spread:.3f}, peak "
                              f"{day.peak_ratio:.3f}, breaches {day.breaches}",
                              flush=True)  # fmt: skip
                        if day.stalls is not None:
                            print(f"    stalls: {day.stalls.line(o.speed)}", flush=True)
                pure_line = []
                for name in names:
                    pure = simulate(evs, limit_w, PURE[name])
                    pure_line.append(f"{name} {100 * sum(pure.delivered_wh.values()) / best:.2f}%")
                    _add(result.pure[name], pure.delivered_wh, evs, best, seeds)
                    result.pure[name].peak = max(result.pure[name].peak, pure.peak_ratio)
                    result.pure[name].breaches += pure.breaches
                if verbose:
                    print(f"  level {level}% seed {seed} pure: {', '.join(pure_line)}", flush=True)
            out[level] = result
    finally:
        db.stop()
    return out


def level_line(level: int, r: LevelResult) -> str:
    """``level 15%: service 97.9% of optimum (EDF e2e x%, LLF e2e y%); pure, without the
    CSMS: allocator 99.96%, EDF ..., LLF ...; breaches 0`` - the ``e2e`` figures ran through
    the CSMS and the lagging EVs, the ``pure`` ones are the allocators alone, 5-min steps."""
    e2e = [f"{LABELS[p]} {x.row.optimum_pct:.1f}%" for p, x in r.e2e.items()]
    head = e2e[0] + " of optimum" + (f" ({', '.join(e2e[1:])})" if len(e2e) > 1 else "")
    pure = ", ".join(f"{name} {row.optimum_pct:.2f}%" for name, row in r.pure.items())
    breaches = sum(x.row.breaches for x in r.e2e.values())
    return f"level {level}%: {head}; pure, without the CSMS: {pure}; breaches {breaches}"


def paired_lines(level: int, r: LevelResult) -> list[str]:
    """The first policy's lead over each other one, day by day (the same seeded days, run
    one after the other, so one day's load hits them alike): per day, mean and s.e."""
    first, *others = r.e2e
    lines = []
    for other in others:
        leads = [a - b for a, b in zip(r.e2e[first].days, r.e2e[other].days, strict=True)]
        mean = statistics.fmean(leads)
        se = statistics.stdev(leads) / len(leads) ** 0.5 if len(leads) > 1 else float("nan")
        days = " / ".join(f"{x:+.2f}" for x in leads)
        lines.append(f"level {level}%: {first} - {other} e2e per day {days}; "
                     f"mean {mean:+.2f} ± {se:.2f} (s.e.), behind on {sum(x < 0 for x in leads)} "
                     f"of {len(leads)} days")  # fmt: skip
    return lines


def print_e2e(table: dict[int, LevelResult], seeds: int, n: int, o: E2EOptions) -> None:
    print(f"end to end ({seeds} seeds x {n} EVs, {o.speed:g}x clock, lagging EVs staying "
          f"plugged in; service = the CSMS's own policy, '... e2e' = the CSMS with that "
          f"allocation_policy, both with simulated chargers; the others pure)")  # fmt: skip
    for level, r in table.items():
        print(level_line(level, r))
    for level, r in table.items():
        for line in paired_lines(level, r):
            print(line)
    print()
    print(f"{'level':>5} {'policy':<9} {'energy%req':>10} {'%optimum':>9} {'served%':>8} "
          f"{'jain':>6} {'peak/limit':>10} {'breaches':>8} {'checks':>8} {'stored%req':>10} "
          f"{'real s':>7}")  # fmt: skip
    for level, r in table.items():
        for policy, x in r.e2e.items():
            s = x.row
            print(f"{level:>4}% {policy:<9} {s.energy_pct:>10.1f} {s.optimum_pct:>9.1f} "
                  f"{s.served_pct:>8.1f} {s.jain:>6.3f} {s.peak:>10.3f} {s.breaches:>8} "
                  f"{x.samples:>8} {x.stored_pct:>10.1f} {x.real_s:>7.0f}")  # fmt: skip
    print()
    if any(x.unused_wh for r in table.values() for x in r.e2e.values()):
        print("unused capacity while an EV wanted energy, kWh per day by cause "
              "(bench/smart_charging_loss.py); gap = LP optimum - delivered")  # fmt: skip
        print(f"{'level':>5} {'policy':<9} {'gap':>6} {'unused':>6} "
              + " ".join(f"{c[:12]:>12}" for c in CAUSES))  # fmt: skip
        for level, r in table.items():
            for policy, x in r.e2e.items():
                u = x.unused_wh
                print(f"{level:>4}% {policy:<9} {x.gap_wh / 1000:>6.2f} "
                      f"{sum(u.values()) / 1000:>6.2f} "
                      + " ".join(f"{u.get(c, 0.0) / 1000:>12.2f}" for c in CAUSES))  # fmt: skip
        print()


def main_e2e(
    seeds: int,
    n: int,
    levels: Sequence[int],
    o: E2EOptions,
    policies: Sequence[str] = DEFAULT_POLICIES,
) -> None:
    configure_logging(LogFormat.CONSOLE, "warning")
    started = time.perf_counter()
    table = asyncio.run(run_e2e(seeds, n, levels, o, policies))
    print_e2e(table, seeds, n, o)
    print(f"({time.perf_counter() - started:.0f} s)")
