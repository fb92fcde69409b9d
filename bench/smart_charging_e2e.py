"""End to end: the real load manager, simulated chargers and lagging EVs, an accelerated day.

    python -m bench.smart_charging_quality --e2e [--seeds 2] [--evs 20] [--speed 600]

One day through the real service (:func:`run_day`); the runs over levels, seeds and
allocation policies and their report are in :mod:`bench.smart_charging_e2e_runs`,
the ``SC_E2E_DEBUG=1`` output in :mod:`bench.smart_charging_e2e_debug`. The workload
is :func:`bench.smart_charging_quality.workload` (same seeds, same EVs).
For each level and seed, in this process:

* a CSMS (:class:`csms.app.Csms`) on a fresh database of one embedded Postgres,
  given the simulator's :class:`~charge_point_sim.clock.SimClock` (``--speed``
  simulated seconds per real second), so every duration of the load manager
  (settle time, idle detection, probes, the periodic plan) is simulated time;
* a site whose total power limit is ``level`` % of the EVs' summed maximum,
  created through the operator API, with a 0 A TxDefaultProfile (an EV waits
  for its plan) and the run's ``allocation_policy`` (``fair`` by default);
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
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bench import smart_charging_e2e_debug as debug
from bench.smart_charging_latency import LatencyProbe
from bench.smart_charging_loss import LossLedger
from bench.smart_charging_stalls import PausingClock, StallMeter, Stalls, quiet_gc
from bench.smart_charging_workload import EV, STEP_H, STEPS, VOLTAGE
from charge_point_sim import Fleet, FleetConfig, SimClock
from charge_point_sim.ev import EVSpec, EVState, power_after
from charge_point_sim.model import Session
from csms.app import Csms
from csms.config import Settings
from csms.storage import api_keys
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded, with_database

TEMPLATE = "sc_e2e_template"
CAPACITY_KWH = 100.0
START_SOC = 20.0


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
    policy: str = "fair"  # the site's allocation_policy (smart_charging/policies.py)
    first_seed: int = 0  # the days run are seeds first_seed .. first_seed + seeds - 1
    steady: bool = True  # take the process's own stalls out (bench/smart_charging_stalls.py)


@dataclass
class E2EOutcome:
    delivered_wh: dict[str, float]
    stored_wh: float  # sum of the CSMS's session energy (cross-check)
    peak_ratio: float
    breaches: int  # checks above the limit
    samples: int  # checks of the summed current (every sample and every step of an EV)
    real_s: float
    unused_wh: dict[str, float] | None = None  # by cause (--explain)
    stalls: Stalls | None = None  # what stopped this process during the day


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
    clock = PausingClock(o.speed) if o.steady else SimClock(o.speed)
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
                    "fallback_current_a": 0.0, "allocation_policy": o.policy}  # fmt: skip
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
            meter = StallMeter(clock if isinstance(clock, PausingClock) else None)
            with quiet_gc() if o.steady else contextlib.nullcontext():
                meter.start()
                try:
                    outcome = await _day(app, api, fleet, clock, evs, limit_w, o, started)
                finally:
                    stalls = await meter.stop()
            return dataclasses.replace(outcome, stalls=stalls)
    finally:
        if fleet is not None:
            await fleet.stop()
        await app.stop()
        if isinstance(clock, PausingClock):
            clock.close()


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
    verdicts: dict[str, int] = {}
    if debug.DEBUG:
        debug.count_verdicts(app, clock, verdicts)
    charger_of: dict[str, str] = {}  # EV id -> its charger's id
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
        charger_of[ev.id] = charger.cfg.charger_id
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
    ledger = LossLedger(fleet, sessions, charger_of, clock, limit_a, draw_w) if o.explain else None
    if ledger is not None:
        ledger.hook(debug.service_of(app))
    latency = LatencyProbe()  # cheap: a few stamps per plan and per triggering event
    latency.hook(app, debug.service_of(app))

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
            if debug.DEBUG:
                debug.explain_breach(fleet, sessions, charger_of, clock, day0, drawn_a, limit_a)
        return drawn_a

    for charger in fleet.chargers:
        charger.on_draw = check
    try:
        while clock.now() < end:
            await clock.sleep(o.sample_s)
            drawn_a = check()
            if debug.DEBUG:
                debug.unused(debug.service_of(app), fleet, sessions, charger_of, clock, limit_a,
                             drawn_a, o.sample_s, waste)  # fmt: skip
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
    if debug.DEBUG:
        print(f"  verdicts: {verdicts}")
        print("  unused capacity while an EV wanted energy (kWh): "
              + ", ".join(f"{k} {v / 1000:.1f}" for k, v in sorted(waste.items())))  # fmt: skip
    delivered = {ev.id: delivered_wh(sessions[ev.id].ev) if ev.id in sessions else 0.0
                 for ev in evs}  # fmt: skip
    await _until_stored(app, len(sessions))
    stored = await app.pool.fetchval("SELECT coalesce(sum(energy_wh), 0) FROM sessions")
    if ledger is not None:
        ledger.account()
        print(f"    {ledger.report()}")
    print(f"    {latency.report()}")
    return E2EOutcome(delivered, float(stored), peak, breaches, samples,
                      time.monotonic() - started, ledger.wh if ledger else None)  # fmt: skip


async def _until_stored(app: Csms, n: int, within: float = 30.0) -> None:
    """Let the last stops reach the CSMS (the stored energy is only a cross-check)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = await app.pool.fetchval("SELECT count(*) FROM sessions WHERE status <> 'active'")
        if done >= n:
            return
        await asyncio.sleep(0.05)
