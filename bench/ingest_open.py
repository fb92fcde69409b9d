"""``bench.ingest --rate/--rates``: the open-loop run, against the toy and the CSMS.

Start the targets (the toy first, so that ``half`` is known for the CSMS) and
open a fleet to each; per rate, one phase against each target in turn; then
close the fleets, check persistence (CSMS), stop the targets, and print one
ratio line per rate. What every figure means is in docs/benchmarks.md ("Open
loop").
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from bench.load_client import PhaseResult
from bench.load_generators import Generators, Phase
from bench.load_targets import Target, lag_between, log_summary, start_csms, start_toy
from bench.ocpp_load import KINDS
from bench.open_loop import LatencySummary

SATURATE, HALF = "sat", "half"
GENERATOR_BUSY = 0.8  # of a core: past this a generator may hold the load back
GENERATOR_LAG = 0.02  # s: a generator loop this late delays its calls


def parse_rates(text: str) -> list[str]:
    """``"sat,150,300,half"`` -> tokens; numbers are calls/s of the whole fleet."""
    tokens = [t.strip().lower() for t in text.split(",") if t.strip()]
    for token in tokens:
        if token not in (SATURATE, HALF):
            if float(token) <= 0:
                raise argparse.ArgumentTypeError(f"rate must be > 0: {token}")
    if HALF in tokens and (SATURATE not in tokens or tokens.index(SATURATE) > tokens.index(HALF)):
        raise argparse.ArgumentTypeError("'half' needs 'sat' before it (half the toy's sat rate)")
    return tokens


@dataclass
class Measured:
    target: str
    label: str  # the rate token: "300", "sat", "half"
    offered: float
    result: PhaseResult
    duration: float
    cpu_per_call: float  # ms of server (+ postgres) CPU per answered call

    @property
    def achieved(self) -> float:
        return self.result.completed / self.duration

    @property
    def latency(self) -> LatencySummary:
        return LatencySummary.of(v for values in self.result.latencies.values() for v in values)


async def run(args: argparse.Namespace) -> int:
    names = ["toy", "csms"] if args.target == "both" else [args.target]
    tokens: list[str] = args.rates
    if HALF in tokens and names[0] != "toy":
        raise SystemExit("'half' is half the toy's saturated rate: use --target both")
    print(
        f"open loop: {args.chargers} chargers (half 1.6J, half 2.0.1), {args.arrivals} arrivals, "
        f"rates {','.join(tokens)} calls/s, {args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up each; {args.generators} generator process(es); "
        f"csms --workers {args.workers}",
        flush=True,
    )
    generators = Generators(args.chargers, args.generators, args.timeout)
    measured: list[Measured] = []
    targets: dict[str, Target] = {}
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
        try:
            for name in names:  # both run throughout: the phases of one rate run back to back
                if name == "toy":
                    targets[name] = await start_toy()
                else:
                    targets[name] = await start_csms(Path(tmp), args.workers, args.csms_python)
                opened, failed, took = await generators.open(
                    name, targets[name].url, args.compression, args.seed
                )
                problems = f", {failed} FAILED to set up" if failed else ""
                print(
                    f"{name}: {opened} chargers booted, in a transaction, in {took:.1f} s{problems}"
                )
            failures = await _run_phases(args, generators, targets, tokens, measured)
        finally:
            generators.stop()
            for target in targets.values():
                await target.stop()
    _print_ratios(measured)
    return 1 if failures else 0


async def _run_phases(
    args: argparse.Namespace,
    generators: Generators,
    targets: dict[str, Target],
    tokens: list[str],
    measured: list[Measured],
) -> int:
    """Each rate against each target in turn; the number of failed checks (persistence).

    Interleaved (toy 150, csms 150, toy 300, ...) rather than one target after the
    other, so that the two figures of a ratio are measured a few seconds apart,
    under the same other work on the machine.
    """
    stored_before = {name: await t.stored_samples() for name, t in targets.items()}
    answered = dict.fromkeys(targets, 0)
    unsure = dict.fromkeys(targets, 0)
    for index, token in enumerate(tokens):
        for name, target in targets.items():
            if token == SATURATE:
                offered = args.chargers * args.saturate_per_charger
            elif token == HALF:  # the toy's sat phase came earlier
                toy_saturated = [m for m in measured if m.target == "toy" and m.label == SATURATE]
                offered = toy_saturated[0].achieved / 2
            else:
                offered = float(token)
            phase = Phase(offered, args.warmup, args.duration, args.arrivals, args.seed + index)
            idle = [t for t in targets.values() if t is not target]
            began = datetime.now(UTC)
            result, usage, lag = await _measure(generators, target, phase, idle)
            alerts = await alerts_opened(target.dsn, began, datetime.now(UTC))
            m = Measured(name, token, offered, result, args.duration, usage["ms_per_call"])
            measured.append(m)
            answered[name] += result.samples_answered
            unsure[name] += result.samples_unsure
            print(_phase_line(m, usage, lag, generators.count), flush=True)
            if alerts is not None:  # a burst of alerts costs the charger path (profiling.md)
                print(f"     alerts opened in the phase: {alerts}", flush=True)
            for example in result.error_examples:
                print(f"    error: {example}", flush=True)
    failures = 0
    for name, target in targets.items():
        await generators.close_fleet(name)
        before = stored_before[name]
        if before is not None:
            failures += await _check_persistence(target, before, answered[name], unsure[name])
        if target.log_path is not None:
            print(f"{name} log: {log_summary(target.log_path)}", flush=True)
            if args.csms_log:
                shutil.copyfile(target.log_path, args.csms_log)
    return failures


async def alerts_opened(dsn: str | None, since: datetime, until: datetime) -> str | None:
    """The alerts the CSMS opened between two times (server clock), per rule."""
    if dsn is None:
        return None
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT rule, count(*) AS n FROM alerts WHERE first_seen >= $1 AND first_seen < $2 "
            "GROUP BY rule ORDER BY 2 DESC",
            since,
            until,
        )
    finally:
        await conn.close()
    rules = ", ".join(f"{r['rule']} {r['n']}" for r in rows)
    return f"{sum(r['n'] for r in rows)}" + (f" ({rules})" if rules else "")


async def _measure(
    generators: Generators, target: Target, phase: Phase, idle: list[Target]
) -> tuple[PhaseResult, dict[str, float], tuple[float, float, float] | None]:
    """One phase, with the CPU used meanwhile and the CSMS's loop lag during it."""
    lag_before = await target.loop_lag()
    server0, db0 = target.cpu_seconds()
    idle0 = sum(sum(t.cpu_seconds()) for t in idle)
    machine0, wall0 = psutil.cpu_times(), time.monotonic()
    result = await generators.run(target.name, phase)
    wall = time.monotonic() - wall0
    server1, db1 = target.cpu_seconds()
    idle1 = sum(sum(t.cpu_seconds()) for t in idle)
    machine1 = psutil.cpu_times()
    lag = lag_between(lag_before, await target.loop_lag())
    busy = (_busy(machine1) - _busy(machine0)) / wall
    usage = {
        "gen": result.cpu_seconds / wall,
        "server": (server1 - server0) / wall,
        "db": (db1 - db0) / wall,
        "idle": (idle1 - idle0) / wall,  # the other target, its chargers connected but quiet
    }
    usage["others"] = max(busy - sum(usage.values()), 0.0)
    # Robust to other work on the machine (unlike rates): what one answer cost the server.
    usage["ms_per_call"] = (
        (server1 - server0 + db1 - db0) / result.answers * 1000 if result.answers else math.nan
    )
    return result, usage, lag


def _busy(times: psutil._common.scputimes) -> float:  # type: ignore[name-defined]
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _phase_line(
    m: Measured, usage: dict[str, float], lag: tuple[float, float, float] | None, gens: int
) -> str:
    r = m.result
    label = "saturated" if m.label == SATURATE else "half toy sat" if m.label == HALF else "rate"
    lag_text = "n/a"
    if lag is not None:
        p99, over, gauge = lag
        lag_text = f"p99 <= {_ms(p99)} ms, {over * 100:.1f}% > 50 ms, max {_ms(gauge)} ms"
    kinds = "  ".join(
        f"{k} {LatencySummary.of(r.latencies[k]).p99 * 1000:.1f}"
        for k in KINDS
        if r.latencies.get(k)
    )
    if m.label == SATURATE:  # from the schedule it only grows with the run: from the send
        latency = f"overloaded, from send to answer {LatencySummary.of(r.service_times).text()}"
    else:
        latency = f"latency {m.latency.text()}"
    if m.label == SATURATE:
        kinds = "n/a (overloaded)"
    line = (
        f"{m.target:<4} {label} {m.offered:.0f}/s: achieved {m.achieved:.1f} calls/s  "
        f"{latency}  errors {r.errors} (disconnects {r.disconnects}, reconnected "
        f"{r.reconnects})  timeouts {r.timeouts} (answered later {r.late_answers})  "
        f"backlog {r.backlog}  rejected starts {r.rejected_starts}\n"
        f"     p99 by kind (ms): {kinds}; settled {r.settle_seconds:.1f} s after the window\n"
        f"     csms event-loop lag: {lag_text}\n"
        f"     cpu (1.0 = one core): generators {usage['gen']:.2f}  server {usage['server']:.2f}  "
        f"postgres {usage['db']:.2f}  idle other target {usage['idle']:.2f}  "
        f"other work on the machine {usage['others']:.2f}; "
        f"generator loop lag max {r.loop_lag_max * 1000:.0f} ms\n"
        f"     server cost: {usage['ms_per_call']:.2f} ms of CPU per answered call "
        "(server and postgres)"
    )
    if m.label == SATURATE and r.backlog == 0:
        line += "\n     WARNING: not saturated (no backlog): raise --saturate-per-charger"
    per_generator = r.cpu_seconds / max(r.wall_seconds, 1e-9) / gens
    if per_generator > GENERATOR_BUSY:
        line += (
            f"\n     WARNING: the generator may be the bottleneck ({per_generator:.2f} of a core "
            "per process): add --generators"
        )
    elif r.loop_lag_max > GENERATOR_LAG and m.label != SATURATE:
        line += (
            f"\n     NOTE: the generator's loop ran up to {r.loop_lag_max * 1000:.0f} ms late "
            "(CPU contention on the machine): latencies may include that much of its own delay"
        )
    return line


async def _check_persistence(target: Target, before: int, answered: int, unsure: int) -> int:
    """Every sample the CSMS answered is stored (+ at most those of timed-out calls)."""
    stored = -1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # a timed-out call may still commit: wait for quiet
        now = (await target.stored_samples() or 0) - before
        if now == stored and now >= answered:
            break
        stored = now
        await asyncio.sleep(1.0)
    ok = answered <= stored <= answered + unsure
    verdict = "OK" if ok else f"MISMATCH ({stored - answered:+d})"
    print(
        f"csms persistence: meter samples in answered calls {answered}, stored {stored} "
        f"(calls that timed out carried {unsure}): {verdict}",
        flush=True,
    )
    return 0 if ok else 1


def _print_ratios(measured: list[Measured]) -> None:
    toy = {m.label: m for m in measured if m.target == "toy"}
    for m in (m for m in measured if m.target == "csms"):
        base = toy.get(m.label)
        if base is None:
            continue
        lat, base_lat = m.latency, base.latency
        what = {SATURATE: "saturated", HALF: f"half toy sat ({m.offered:.0f}/s)"}.get(
            m.label, f"{m.offered:.0f}/s"
        )
        text = (
            f"ratio csms/toy {what}: throughput {_ratio(m.achieved, base.achieved)} "
            f"({m.achieved:.0f} vs {base.achieved:.0f} calls/s)"
        )
        text += f", CPU per call {_ratio(m.cpu_per_call, base.cpu_per_call)}"
        if m.label != SATURATE:
            text += (
                f", p50 {_ratio(lat.p50, base_lat.p50)} ({_ms(lat.p50)} vs {_ms(base_lat.p50)} "
                f"ms), p99 {_ratio(lat.p99, base_lat.p99)} ({_ms(lat.p99)} vs "
                f"{_ms(base_lat.p99)} ms)"
            )
        print(text, flush=True)


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def _ms(seconds: float) -> str:
    return (
        "n/a" if math.isnan(seconds) else "inf" if math.isinf(seconds) else f"{seconds * 1000:.1f}"
    )
