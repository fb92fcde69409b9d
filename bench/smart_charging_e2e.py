"""End to end: the real load manager, simulated chargers and lagging EVs, an accelerated day.

    python -m bench.smart_charging_quality --e2e [--seeds 2] [--evs 20] [--speed 900]

The workload is :func:`bench.smart_charging_quality.workload` (same seeds, same EVs).
For each level and seed, in this process:

* a CSMS (:class:`csms.app.Csms`) on a fresh database of one embedded Postgres,
  given the simulator's :class:`~charge_point_sim.clock.SimClock` (``--speed``
  simulated seconds per real second), so every duration of the load manager
  (settle time, idle detection, probes, the periodic plan) is simulated time;
* a site whose total power limit is ``level`` % of the EVs' summed maximum,
  created through the operator API, with a 0 A TxDefaultProfile (an EV waits
  for its plan);
* one single-connector charger per EV (:mod:`charge_point_sim`): even EVs on a
  1.6J single-phase 32 A charger, odd ones on a 2.0.1 three-phase 16 A charger;
* each EV (the lagging model of :mod:`charge_point_sim.ev`: 2 s delay, 3 s ramp)
  plugs in at its arrival, is told to the CSMS through the API's session
  preferences (departure time, energy wanted), stays plugged in when it has
  its energy (SuspendedEV) and leaves at its departure. Battery 100 kWh from
  20 %, so the request ends below the taper (the optimum knows no taper).

Measured: energy delivered from the **simulator's EVs** (state of charge gained;
the CSMS's stored session energy is printed beside it as a cross-check), as %
of the requests and of the same LP optimum the pure mode uses; % of EVs served;
Jain; peak and breaches of the summed current of the simulated EVs, checked
after every step of any EV's model (so at every change of a draw) and every
10 simulated seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.smart_charging_loss import CAUSES, LossLedger
from bench.smart_charging_quality import (
    EV,
    STEP_H,
    STEPS,
    VOLTAGE,
    Row,
    jain,
    optimum_wh,
    simulate,
    workload,
)
from bench.smart_charging_quality import SCHEDULERS as PURE
from charge_point_sim import Fleet, FleetConfig, SimClock
from charge_point_sim.ev import EVSpec, EVState, power_after
from charge_point_sim.model import Session
from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.logs import configure_logging
from csms.storage import api_keys
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded, with_database

TEMPLATE = "sc_e2e_template"
CAPACITY_KWH = 100.0
START_SOC = 20.0
COMPARED = ("allocator", "EDF", "LLF")


@dataclass
class E2EOptions:
    speed: float = 600.0
    meter_interval: int = 300  # simulated s between meter values of a session (5-min steps)
    sample_s: float = 10.0  # simulated s between two samples of the summed current
    debounce: float = 0.005  # real s: events are 'speed' times denser than in a real day
    settle: float = 5.0  # simulated s (the CSMS's default, IEC 61851-1)
    interval: float = 300.0  # simulated s between periodic plans (the pure mode's step)
    day_steps: int = STEPS  # 5-minute steps of the day to run (a smoke runs a short day)
    explain: bool = False  # decompose the unused capacity by cause (bench/smart_charging_loss.py)


@dataclass
class E2EOutcome:
    delivered_wh: dict[str, float]
    stored_wh: float  # sum of the CSMS's session energy (cross-check)
    peak_ratio: float
    breaches: int  # checks above the limit
    samples: int  # checks of the summed current (every sample and every step of an EV)
    real_s: float
    unused_wh: dict[str, float] | None = None  # by cause (--explain)


class Database:
    """One embedded Postgres with a migrated template; a fresh database per run."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-sc-e2e-"))
        self.admin = ""

    async def start(self) -> None:
        dsn = await start_embedded(self.folder / "data")
        self.admin = with_database(dsn, "postgres")
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        await run_migrations(with_database(dsn, TEMPLATE))

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        name = f"e2e_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.admin)
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        finally:
            await conn.close()
        try:
            yield with_database(self.admin, name)
        finally:
            conn = await asyncpg.connect(self.admin)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

    def stop(self) -> None:
        stop_embedded(self.folder / "data")
        shutil.rmtree(self.folder, ignore_errors=True)


def ev_state(ev: EV, departure: datetime) -> EVState:
    spec = EVSpec(
        capacity_kwh=CAPACITY_KWH,
        max_ac_kw=ev.max_w / 1000.0,
        phases=len(ev.phases),
    )
    target = START_SOC + ev.energy_wh / (CAPACITY_KWH * 1000.0) * 100.0
    return EVState(spec, soc=START_SOC, target_soc=target, departure=departure,
                   stays_plugged=True)  # fmt: skip


def draw_w(s: Session, clock: SimClock) -> float:
    """What the simulated EV draws now: its model played out from its last step (it may
    be following a new limit; its charger steps it only now and then)."""
    if s.stepped_at is None:
        return s.power_w
    return power_after(s.ev, (clock.now() - s.stepped_at).total_seconds())


def delivered_wh(state: EVState) -> float:
    return (state.soc - START_SOC) / 100.0 * CAPACITY_KWH * 1000.0


@contextlib.asynccontextmanager
async def operator_api(app: Csms) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client of ``app``'s API; the id token ``T`` the simulated EVs use is
    added (Accepted)."""
    _, key = await api_keys.create(app.pool, "bench", "operator")
    await app.pool.execute("INSERT INTO id_tokens (id_token, status) VALUES ('T', 'Accepted')")
    base = app.api_url.replace("://localhost", "://127.0.0.1")
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        yield api


async def run_day(dsn: str, evs: Sequence[EV], limit_w: float, o: E2EOptions) -> E2EOutcome:
    """One seeded day at one limit through the real CSMS on database ``dsn`` (migrated,
    empty; see the module docstring)."""
    started = time.monotonic()
    clock = SimClock(o.speed)
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, database_url=dsn,
        migrate_on_start=False, log_level="warning", node_id="e2e",
        smart_charging_interval=o.interval, smart_charging_settle=o.settle,
        smart_charging_debounce=o.debounce,
    )  # fmt: skip
    app = Csms(settings, clock=clock)
    await app.start()
    fleet: Fleet | None = None
    try:
        async with operator_api(app) as api:
            site = {"site_id": "s", "power_limit_kw": limit_w / 1000.0,
                    "fallback_current_a": 0.0}  # fmt: skip
            (await api.post("/sites", json=site)).raise_for_status()
            fleet = Fleet(
                FleetConfig(
                    url=f"ws://127.0.0.1:{app.port}/ocpp", chargers=len(evs), v201_share=0.5,
                    connectors=1, speed=o.speed, arrival_rate=0.0, id_tags=["T"],
                    meter_interval=o.meter_interval, heartbeat_interval=3600,
                    max_power_w=11_040.0, call_timeout=30.0,
                ),
                clock=clock,
            )  # fmt: skip
            await fleet.start()
            if not await fleet.wait_online(60.0):
                raise RuntimeError("the chargers did not all boot")
            for ev, charger in zip(evs, fleet.chargers, strict=True):
                place = {"site_id": "s", "max_current_a": ev.max_a,
                         "phases": len(ev.phases)}  # fmt: skip
                r = await api.put(f"/chargers/{charger.cfg.charger_id}/site", json=place)
                r.raise_for_status()
            return await _day(app, api, fleet, clock, evs, limit_w, o, started)
    finally:
        if fleet is not None:
            await fleet.stop()
        await app.stop()


async def _day(
    app: Csms,
    api: httpx.AsyncClient,
    fleet: Fleet,
    clock: SimClock,
    evs: Sequence[EV],
    limit_w: float,
    o: E2EOptions,
    started: float,
) -> E2EOutcome:
    day0 = clock.now()  # 07:00 of the workload
    if DEBUG:
        _count_verdicts(app, clock)
    step_s = STEP_H * 3600.0
    sessions: dict[str, Session] = {}
    end = day0 + timedelta(seconds=o.day_steps * step_s)

    async def arrive(ev: EV, index: int) -> None:
        await clock.sleep((day0 - clock.now()).total_seconds() + ev.arrival * step_s)
        departure = day0 + timedelta(seconds=min(ev.departure, o.day_steps) * step_s)
        charger = fleet.chargers[index]
        s = await charger.start_session(1, "T", ev_state(ev, departure))
        if s is None:
            raise RuntimeError(f"{ev.id}: the session did not start")
        sessions[ev.id] = s
        CHARGER_OF[ev.id] = charger.cfg.charger_id
        # Polling: 1.6 learns its transaction id from the CSMS's answer, in another task.
        while s.transaction_id is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        needs = {"departure_at": departure.isoformat(), "energy_wanted_wh": ev.energy_wh}
        path = f"/chargers/{charger.cfg.charger_id}/transactions/{s.transaction_id}/preferences"
        for attempt in range(3):  # a loaded machine once dropped the connection (ReadError)
            try:
                (await api.put(path, json=needs)).raise_for_status()
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise

    arrivals = [
        asyncio.create_task(arrive(ev, i)) for i, ev in enumerate(evs) if ev.arrival < o.day_steps
    ]
    limit_a = limit_w / VOLTAGE  # summed over the lines
    peak, breaches, samples = 0.0, 0, 0
    waste: dict[str, float] = {}
    ledger = LossLedger(fleet, sessions, CHARGER_OF, clock, limit_a, draw_w) if o.explain else None
    if ledger is not None:
        ledger.hook(_service(app))

    def check() -> float:
        """The EVs' summed current now against the limit: at every sample and every step
        of any session (so a breach between two samples is counted too)."""
        nonlocal peak, breaches, samples
        drawn_a = sum(
            draw_w(s, clock) / VOLTAGE for s in sessions.values() if s.stop_reason is None
        )
        if ledger is not None:
            ledger.account()
        samples += 1
        peak = max(peak, drawn_a / limit_a)
        if drawn_a > limit_a * (1 + 1e-6) + 0.1:
            breaches += 1
            if DEBUG:
                _explain(fleet, sessions, clock, day0, drawn_a, limit_a)
        return drawn_a

    for charger in fleet.chargers:
        charger.on_draw = check
    try:
        while clock.now() < end:
            await clock.sleep(o.sample_s)
            drawn_a = check()
            if DEBUG:
                _unused(fleet, sessions, clock, limit_a, drawn_a, o.sample_s, waste)
            for task in arrivals:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if all(t.done() for t in arrivals) and all(
                s.stop_reason is not None for s in sessions.values()
            ):
                break  # everyone has left
    finally:
        for task in arrivals:
            task.cancel()
        for charger in fleet.chargers:
            charger.on_draw = None
    if DEBUG:
        print(f"  verdicts: {VERDICTS}")
        print("  unused capacity while an EV wanted energy (kWh): "
              + ", ".join(f"{k} {v / 1000:.1f}" for k, v in sorted(waste.items())))  # fmt: skip
    delivered = {ev.id: delivered_wh(sessions[ev.id].ev) if ev.id in sessions else 0.0
                 for ev in evs}  # fmt: skip
    await _until_stored(app, len(sessions))
    stored = await app.pool.fetchval("SELECT coalesce(sum(energy_wh), 0) FROM sessions")
    if ledger is not None:
        ledger.account()
        print(f"    {ledger.report()}")
    return E2EOutcome(delivered, float(stored), peak, breaches, samples,
                      time.monotonic() - started, ledger.wh if ledger else None)  # fmt: skip


def _service(app: Csms) -> Any:
    from smart_charging.service import SmartChargingService

    return next(x for x in app.services if isinstance(x, SmartChargingService))


DEBUG = bool(os.environ.get("SC_E2E_DEBUG"))


def _explain(
    fleet: Fleet,
    sessions: dict[str, Session],
    clock: SimClock,
    day0: datetime,
    drawn_a: float,
    limit_a: float,
) -> None:
    """SC_E2E_DEBUG=1: what each EV draws at a breach, its limit and its profiles."""
    now = clock.now()
    print(f"breach at +{(now - day0).total_seconds():.0f} s: {drawn_a:.1f} A > {limit_a:.1f} A")
    for ev_id, s in sorted(sessions.items()):
        if s.stop_reason is not None:
            continue
        charger = fleet.charger(CHARGER_OF[ev_id])
        limit = charger.limit_w(charger.connectors[1], now) / VOLTAGE
        pilot = (s.ev.pilot_w or 0.0) / VOLTAGE
        print(f"  {ev_id} draws {s.power_w / VOLTAGE:.1f} A limit {limit:.1f} A "
              f"pilot {pilot:.1f} A delay {s.ev.delay_left_s:.1f} s full {s.ev.full}")  # fmt: skip
        for p in charger.profiles.profiles:
            limits = [(q.start, q.limit, q.phases) for q in p.periods]
            print(f"    {p.purpose} level {p.stack_level} evse {p.evse_id} {limits}")


VERDICTS: dict[str, int] = {}
SERVICE: list[Any] = []  # the load manager (debug output)
CHARGER_OF: dict[str, str] = {}  # EV id -> its charger's id (debug output)


def _count_verdicts(app: Csms, clock: SimClock) -> None:
    """SC_E2E_DEBUG=1: count what the load manager concludes from meter values."""
    from smart_charging.service import SmartChargingService

    svc = next(x for x in app.services if isinstance(x, SmartChargingService))
    SERVICE[:] = [svc]
    measure = svc._measure

    def counted(event: Any) -> Any:
        verdict = measure(event)
        name = str(verdict)
        VERDICTS[name] = VERDICTS.get(name, 0) + 1
        if verdict is not None and verdict.value == "drawing_more_than_allowed":
            at = max(str(x.sampled_at) for x in event.samples)
            print(f"  overdraw: sampled {at} judged at {clock.now().isoformat()}")
        return verdict

    svc._measure = counted  # type: ignore[method-assign]


def _unused(
    fleet: Fleet,
    sessions: dict[str, Session],
    clock: SimClock,
    limit_a: float,
    drawn_a: float,
    dt_s: float,
    waste: dict[str, float],
) -> None:
    """SC_E2E_DEBUG=1: capacity left unused while an EV wanted energy (Wh), by cause.

    * ``departed``: still planned for an EV that has left (the CSMS has not seen it go);
    * ``full``: offered to a present EV that is full (draws nothing);
    * ``min current``: what is left is less than a waiting EV's minimum (6 A per line);
    * ``other``: the rest (a new limit being followed, an EV not yet planned, ...).
    """
    now = clock.now()
    present = {CHARGER_OF[e]: s for e, s in sessions.items() if s.stop_reason is None}
    wanting = [s for s in present.values() if not s.ev.full]
    room_a = sum(max(0.0, s.ev.spec.max_ac_kw * 1000 - s.power_w) / VOLTAGE for s in wanting)
    unused_a = min(limit_a - drawn_a, room_a)
    if unused_a < 0.5:
        return
    departed_a = 0.0
    view = SERVICE[0].views.get("s") if SERVICE else None
    for x in view.sessions if view is not None else []:
        if x["charge_point_id"] not in present:
            amps = x["uncontrolled_a"] or x["limit_a"] or 0.0
            departed_a += amps * (3 if x["phases"] == 3 else 1)
    full_a = 0.0
    for cp, s in present.items():
        if s.ev.full:
            charger = fleet.charger(cp)
            full_a += charger.limit_w(charger.connectors[1], now) / VOLTAGE
    causes = {}
    left = unused_a
    for cause, amps in (("departed", departed_a), ("full", full_a)):
        causes[cause] = min(left, amps)
        left -= causes[cause]
    paused = [s for s in wanting if s.power_w <= 0.0]
    smallest = min((6.0 * s.ev.spec.phases for s in paused), default=0.0)
    causes["min current" if paused and left < smallest else "other"] = left
    for cause, amps in causes.items():
        waste[cause] = waste.get(cause, 0.0) + amps * VOLTAGE * dt_s / 3600
    if os.environ.get("SC_E2E_SNAP") and unused_a >= 6.0:
        rows = []
        for ev_id, s in sorted(sessions.items()):
            if s.stop_reason is not None:
                continue
            charger = fleet.charger(CHARGER_OF[ev_id])
            limit = charger.limit_w(charger.connectors[1], now) / VOLTAGE
            rows.append(
                f"{ev_id}:{'F' if s.ev.full else 'w'} {s.power_w / VOLTAGE:.0f}/{limit:.0f}"
            )
        print(f"  unused {unused_a:.1f} A: " + " ".join(rows))
        if view is not None:
            told = [
                f"{x['charge_point_id'][-2:]}:{x['planned_a']}/{x['limit_a']}"
                f"{'i' if x['idle'] else ''}{'u' if x['uncontrolled_a'] else ''}"
                for x in view.sessions
            ]
            print(f"    plan {view.reason} {view.allocated_a}: " + " ".join(told))


async def _until_stored(app: Csms, n: int, within: float = 30.0) -> None:
    """Let the last stops reach the CSMS (the stored energy is only a cross-check)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = await app.pool.fetchval("SELECT count(*) FROM sessions WHERE status <> 'active'")
        if done >= n:
            return
        await asyncio.sleep(0.05)


@dataclass
class LevelResult:
    service: Row
    pure: dict[str, Row]
    stored_pct: float  # CSMS-stored energy as % of requested (cross-check)
    samples: int
    real_s: float
    unused_wh: dict[str, float] = dataclasses.field(default_factory=dict)  # mean per day
    gap_wh: float = 0.0  # optimum less delivered, mean per day


def _add(r: Row, delivered: dict[str, float], evs: Sequence[EV], best: float, seeds: int) -> None:
    requested = sum(ev.energy_wh for ev in evs)
    got = sum(delivered.values())
    fractions = [min(1.0, delivered[ev.id] / ev.energy_wh) for ev in evs]
    r.energy_pct += 100 * got / requested / seeds
    r.optimum_pct += 100 * got / best / seeds
    r.served_pct += 100 * sum(f >= 0.99 for f in fractions) / len(evs) / seeds
    r.jain += jain(fractions) / seeds


async def run_e2e(
    seeds: int, n: int, levels: Sequence[int], o: E2EOptions, verbose: bool = True
) -> dict[int, LevelResult]:
    db = Database()
    await db.start()
    out: dict[int, LevelResult] = {}
    try:
        for level in levels:
            result = LevelResult(Row(), {name: Row() for name in COMPARED}, 0.0, 0, 0.0)
            for seed in range(seeds):
                evs = workload(seed, n)
                limit_w = level / 100 * sum(ev.max_w for ev in evs)
                best = optimum_wh(evs, limit_w)
                async with db.fresh() as dsn:
                    day = await run_day(dsn, evs, limit_w, o)
                _add(result.service, day.delivered_wh, evs, best, seeds)
                result.service.peak = max(result.service.peak, day.peak_ratio)
                result.service.breaches += day.breaches
                result.stored_pct += 100 * day.stored_wh / sum(e.energy_wh for e in evs) / seeds
                result.samples += day.samples
                result.real_s += day.real_s
                result.gap_wh += (best - sum(day.delivered_wh.values())) / seeds
                for cause, wh in (day.unused_wh or {}).items():
                    result.unused_wh[cause] = result.unused_wh.get(cause, 0.0) + wh / seeds
                for name in COMPARED:
                    pure = simulate(evs, limit_w, PURE[name])
                    _add(result.pure[name], pure.delivered_wh, evs, best, seeds)
                    result.pure[name].peak = max(result.pure[name].peak, pure.peak_ratio)
                    result.pure[name].breaches += pure.breaches
                if verbose:
                    got = 100 * sum(day.delivered_wh.values()) / best
                    print(f"  level {level}% seed {seed}: {day.real_s:.0f} s real, "
                          f"{got:.1f}% of optimum, peak {day.peak_ratio:.3f}, "
                          f"breaches {day.breaches}", flush=True)  # fmt: skip
            out[level] = result
    finally:
        db.stop()
    return out


def print_e2e(table: dict[int, LevelResult], seeds: int, n: int, o: E2EOptions) -> None:
    print(f"end to end ({seeds} seeds x {n} EVs, {o.speed:g}x clock, lagging EVs staying "
          f"plugged in; service = the CSMS with simulated chargers, the others pure)")  # fmt: skip
    for level, r in table.items():
        pure = ", ".join(f"{name} {r.pure[name].optimum_pct:.1f}%" for name in COMPARED)
        print(f"level {level}%: service {r.service.optimum_pct:.1f}% of optimum, {pure}, "
              f"breaches {r.service.breaches}")  # fmt: skip
    print()
    print(f"{'level':>5} {'energy%req':>10} {'%optimum':>9} {'served%':>8} {'jain':>6} "
          f"{'peak/limit':>10} {'breaches':>8} {'checks':>8} {'stored%req':>10} "
          f"{'real s':>7}")  # fmt: skip
    for level, r in table.items():
        s = r.service
        print(f"{level:>4}% {s.energy_pct:>10.1f} {s.optimum_pct:>9.1f} {s.served_pct:>8.1f} "
              f"{s.jain:>6.3f} {s.peak:>10.3f} {s.breaches:>8} {r.samples:>8} "
              f"{r.stored_pct:>10.1f} {r.real_s:>7.0f}")  # fmt: skip
    print()
    if any(r.unused_wh for r in table.values()):
        print("unused capacity while an EV wanted energy, kWh per day by cause "
              "(bench/smart_charging_loss.py); gap = LP optimum - delivered")  # fmt: skip
        print(f"{'level':>5} {'gap':>6} {'unused':>6} " + " ".join(f"{c[:12]:>12}" for c in CAUSES))
        for level, r in table.items():
            u = r.unused_wh
            print(f"{level:>4}% {r.gap_wh / 1000:>6.2f} {sum(u.values()) / 1000:>6.2f} "
                  + " ".join(f"{u.get(c, 0.0) / 1000:>12.2f}" for c in CAUSES))  # fmt: skip
        print()


def main_e2e(seeds: int, n: int, levels: Sequence[int], o: E2EOptions) -> None:
    configure_logging(LogFormat.CONSOLE, "warning")
    started = time.perf_counter()
    table = asyncio.run(run_e2e(seeds, n, levels, o))
    print_e2e(table, seeds, n, o)
    print(f"({time.perf_counter() - started:.0f} s)")
