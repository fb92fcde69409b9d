"""Run N simulated chargers: arrivals, fault injection, progress and the summary.

Typical programmatic use (tests, benchmarks)::

    fleet = Fleet(FleetConfig(url=csms.ocpp_url, chargers=4, speed=600, sessions=10))
    summary = await fleet.run()      # bounded by duration / sessions / fleet.stop()

or drive it by hand with :meth:`Fleet.start`, :meth:`Fleet.charger`,
:meth:`Fleet.stop` and :meth:`Fleet.summary`. Every loop here ends when the
fleet's stop event is set, so a run is always bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock
from charge_point_sim.commands import SimCharger
from charge_point_sim.ev import EVState, random_ev
from charge_point_sim.scenario import Arrival, FaultSpec
from charge_point_sim.stats import Stats, Summary
from charge_point_sim.v16 import V16Charger
from charge_point_sim.v201 import V201Charger


@dataclass
class FleetConfig:
    """Everything that defines a run. Times are simulated seconds."""

    url: str = "ws://127.0.0.1:9000/ocpp"
    chargers: int = 1
    v201_share: float = 0.5
    connectors: int = 2
    password: str | None = None
    seed: int = 1
    speed: float = 1.0
    duration: float | None = None
    sessions: int | None = None
    arrival_rate: float = 1.0
    """Poisson arrivals per connector per simulated hour (0 = no random arrivals)."""
    schedule: Sequence[Arrival] = ()
    faults: Sequence[FaultSpec] = ()
    id_tags: Sequence[str] = ("SIMTAG",)
    dwell_mean_s: float = 4 * 3600.0
    ev_stays_plugged: bool = False
    """A full EV stays plugged in (drawing nothing, SuspendedEV) until its departure."""
    meter_interval: int = 60
    heartbeat_interval: int = 300
    max_power_w: float = 22_000.0
    id_prefix: str = "SIM-"
    rate_units: str = "A,W"  # what every charger's schedules take: "A", "W" or "A,W"
    cost_updates: bool = False  # 2.0.1 chargers show a running cost (take CostUpdated)
    call_timeout: float = 10.0
    drain_timeout: float = 5.0
    progress: bool = False

    def is_v201(self, index: int) -> bool:
        """Exactly ``round(N * share)`` chargers speak 2.0.1, spread evenly."""
        return int((index + 1) * self.v201_share) > int(index * self.v201_share)


class Fleet:
    """A set of chargers plus the processes that drive them."""

    def __init__(self, cfg: FleetConfig, clock: SimClock | None = None) -> None:
        """``clock``: share one (e.g. with a CSMS run in-process at the same speed)."""
        self.cfg = cfg
        self.clock = clock if clock is not None else SimClock(cfg.speed)
        self.stats = Stats()
        self.rng = random.Random(cfg.seed)
        self.stop_event = asyncio.Event()
        self.finish_event = asyncio.Event()
        self.chargers: list[SimCharger] = []
        for i in range(cfg.chargers):
            ccfg = ChargerConfig(
                charger_id=f"{cfg.id_prefix}{i:04d}",
                url=cfg.url,
                connectors=cfg.connectors,
                password=cfg.password,
                max_power_w=cfg.max_power_w,
                heartbeat_interval=cfg.heartbeat_interval,
                meter_interval=cfg.meter_interval,
                call_timeout=cfg.call_timeout,
                rate_units=cfg.rate_units,
                cost_updates=cfg.cost_updates,
            )
            cls = V201Charger if cfg.is_v201(i) else V16Charger
            self.chargers.append(cls(ccfg, self.clock, self.stats, seed=cfg.seed * 100_003 + i))
        self._tasks: list[asyncio.Task[None]] = []
        self._real_start = time.monotonic()
        self._sim_start = 0.0
        self._ended: tuple[float, float] | None = None  # (sim, real) when stop() began

    def charger(self, key: int | str) -> SimCharger:
        """A charger by index or by charge point id."""
        if isinstance(key, int):
            return self.chargers[key]
        return next(c for c in self.chargers if c.cfg.charger_id == key)

    # ---------------------------------------------------------------- running
    async def start(self) -> None:
        """Connect every charger and start arrivals, faults and progress display."""
        self._real_start = time.monotonic()
        self._sim_start = self.clock.elapsed()
        for ch in self.chargers:
            self._tasks.append(asyncio.create_task(ch.run(self.stop_event)))
            if self.cfg.arrival_rate > 0:
                for conn_id in ch.connectors:
                    self._tasks.append(asyncio.create_task(self._poisson(ch, conn_id)))
        if self.cfg.schedule:
            self._tasks.append(asyncio.create_task(self._scheduled()))
        for spec in self.cfg.faults:
            self._tasks.append(asyncio.create_task(self._inject(spec)))
        if self.cfg.progress:
            self._tasks.append(asyncio.create_task(self._progress()))

    async def wait_online(self, within: float = 10.0) -> bool:
        """Wait up to ``within`` real seconds until every charger is connected and booted."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(c.online and c.booted for c in self.chargers):
                return True
            await asyncio.sleep(0.02)
        return False

    async def wait(self) -> None:
        """Block until the duration / session target is reached or :meth:`finish` is called."""
        while not self.stop_event.is_set() and not self.finish_event.is_set():
            elapsed = self.clock.elapsed() - self._sim_start
            if self.cfg.duration is not None and elapsed >= self.cfg.duration:
                break
            if self.cfg.sessions is not None and self.stats.sessions_completed >= self.cfg.sessions:
                break
            left = None if self.cfg.duration is None else self.cfg.duration - elapsed
            await asyncio.sleep(0.05 if left is None else min(0.05, self.clock.real_seconds(left)))

    def finish(self) -> None:
        """Ask :meth:`wait` / :meth:`run` to end the run gracefully (e.g. on Ctrl-C)."""
        self.finish_event.set()

    async def stop(self) -> None:
        """Stop sessions (StopTransaction / Ended are delivered), then disconnect."""
        self._ended = (self.clock.elapsed(), time.monotonic())
        await asyncio.gather(
            *(c.shutdown(self.cfg.drain_timeout) for c in self.chargers), return_exceptions=True
        )
        self.stop_event.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.cfg.progress:
            sys.stderr.write("\n")

    async def run(self) -> Summary:
        """start() + wait() + stop() and return the summary."""
        await self.start()
        try:
            await self.wait()
        finally:
            await self.stop()
        return self.summary()

    def summary(self) -> Summary:
        """Current numbers (final once :meth:`stop` returned).

        The run's length is measured up to the start of :meth:`stop`, so the
        final drain of transaction messages does not count as simulated time.
        """
        sim_now, real_now = self._ended or (self.clock.elapsed(), time.monotonic())
        return self.stats.summary(
            chargers=len(self.chargers),
            sim_seconds=sim_now - self._sim_start,
            real_seconds=real_now - self._real_start,
        )

    # ------------------------------------------------------------- arrivals
    def _may_start(self) -> bool:
        n = self.cfg.sessions
        return n is None or self.stats.sessions_started < n

    def make_ev(self, rng: random.Random, arrival: Arrival | None = None) -> EVState:
        """A random EV (overridden by fields of a scheduled arrival)."""
        dwell = rng.expovariate(1.0 / self.cfg.dwell_mean_s) if self.cfg.dwell_mean_s else None
        if arrival is not None and arrival.dwell_s is not None:
            dwell = arrival.dwell_s
        departure = self.clock.now() + timedelta(seconds=dwell) if dwell else None
        ev = random_ev(rng, departure, self.cfg.ev_stays_plugged)
        if arrival is not None:
            spec = ev.spec
            if arrival.capacity_kwh is not None:
                spec = replace(spec, capacity_kwh=arrival.capacity_kwh)
            ev = replace(
                ev,
                spec=spec,
                soc=arrival.soc if arrival.soc is not None else ev.soc,
                target_soc=arrival.target_soc if arrival.target_soc is not None else ev.target_soc,
            )
        return ev

    async def _poisson(self, ch: SimCharger, conn_id: int) -> None:
        rng = random.Random(f"{self.cfg.seed}/{ch.cfg.charger_id}/{conn_id}")
        rate_per_s = self.cfg.arrival_rate / 3600.0
        while not self.stop_event.is_set():
            await self.clock.sleep(rng.expovariate(rate_per_s))
            conn = ch.connectors[conn_id]
            if ch.booted and self._may_start() and ch.can_start(conn, None):
                tag = rng.choice(list(self.cfg.id_tags))
                await ch.start_session(conn_id, tag, self.make_ev(rng))

    async def _scheduled(self) -> None:
        rng = random.Random(f"{self.cfg.seed}/schedule")
        # Scheduled EVs arrive at chargers that have booted, so a schedule means the
        # same thing however long the first connection takes.
        await self.wait_online(10.0)
        for arrival in self.cfg.schedule:
            await self.clock.sleep(arrival.at - (self.clock.elapsed() - self._sim_start))
            ch = self.chargers[arrival.charger % len(self.chargers)]
            tag = arrival.id_tag or rng.choice(list(self.cfg.id_tags))
            if self._may_start():
                ch.spawn(ch.start_session(arrival.connector, tag, self.make_ev(rng, arrival)))

    # --------------------------------------------------------------- faults
    async def _inject(self, spec: FaultSpec) -> None:
        rng = random.Random(f"{self.cfg.seed}/fault/{spec.kind}/{spec.at}")
        # Like scheduled arrivals, a fault waits for the fleet to have booted: a link
        # dropped before it was up would be no fault at all (a slow first connection,
        # a stalled machine), and a fault status set while offline is only reported
        # at the boot. A fault is at ``at`` or, if later, once every charger is up.
        await self.wait_online(10.0)
        await self.clock.sleep(spec.at - (self.clock.elapsed() - self._sim_start))
        if spec.kind == "disconnect-storm":
            victims = [c for c in self.chargers if rng.random() < spec.fraction]
            if spec.charger is not None:
                victims = [self.chargers[spec.charger]]
            offsets = sorted((rng.uniform(0, spec.duration), c) for c in victims)
            start = self.clock.elapsed()
            for offset, ch in offsets:
                await self.clock.sleep(offset - (self.clock.elapsed() - start))
                ch.drop_connection()
            return
        ch = self.chargers[
            spec.charger if spec.charger is not None else rng.randrange(len(self.chargers))
        ]
        if spec.kind == "power-drop":
            ch.power_drop(spec.connector, spec.factor, spec.duration)
            return
        if spec.kind == "faulted":
            await ch.fault(spec.connector, spec.code)
            await self.clock.sleep(spec.duration)
            await ch.clear_fault(spec.connector)
        elif spec.kind == "temperature-drift":
            conn = ch.connectors[spec.connector]
            steps = max(1, int(spec.duration // 30))
            for step in range(1, steps + 1):  # one step per simulated half minute
                conn.temperature_drift_c = spec.factor * step / steps
                await self.clock.sleep(spec.duration / steps)
        elif spec.kind == "stuck-meter":
            ch.connectors[spec.connector].stuck_meter = True
            await self.clock.sleep(spec.duration)
            ch.connectors[spec.connector].stuck_meter = False

    async def _progress(self) -> None:
        while not self.stop_event.is_set():
            line = self.stats.progress_line(time.monotonic() - self._real_start)
            sys.stderr.write("\r" + line[:160].ljust(100))
            sys.stderr.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 1.0)


async def run_fleet(cfg: FleetConfig) -> Summary:
    """Run a whole fleet to completion and return its summary."""
    return await Fleet(cfg).run()
