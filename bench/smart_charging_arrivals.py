"""Arrivals on a full site: the peak against the limit, and how long a newcomer waits.

    python -m bench.smart_charging_arrivals [--reserve 0,6] [--speed 10]

A real CSMS (in this process, on a fresh database of one embedded Postgres) and
simulated chargers with the lagging EV model share a simulated clock, so the
load manager's settle time (5 s, as in production) is simulated time. The site:
four three-phase 16 A chargers on 32 A per line, failsafe share 8 A. Two EVs
(22 kW, they take whatever they are given) charge at full power; then a third
and a fourth plug in, 120 simulated seconds apart. Per arrival: the simulated
seconds from plug-in until the EV draws (1 A or more) and until it draws its
share; over the run: the highest summed draw per line, checked at every change
of any EV's draw, against the limit. One run per ``--reserve`` value (the
site's ``arrival_reserve_a``; 0 = the default). Not a timed test: under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from dataclasses import dataclass

from bench.smart_charging_e2e import Database, operator_api
from charge_point_sim import Fleet, FleetConfig, SimClock
from charge_point_sim.ev import VOLTAGE, EVSpec, EVState
from csms.app import Csms
from csms.config import Settings

LIMIT_A = 32.0
CHARGERS = 4


@dataclass
class Arrival:
    charger: str
    plugged_at: float  # simulated s since the start
    drawing_after: float | None = None
    at_share_after: float | None = None


@dataclass
class Outcome:
    reserve_a: float
    peak_a: float
    checks: int
    arrivals: list[Arrival]


async def run(dsn: str, reserve_a: float, speed: float) -> Outcome:
    clock = SimClock(speed)
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, database_url=dsn,
        migrate_on_start=False, log_level="warning", node_id="arrivals",
        smart_charging_interval=60.0, smart_charging_settle=5.0,
    )  # fmt: skip
    app = Csms(settings, clock=clock)
    await app.start()
    fleet: Fleet | None = None
    peak, checks = 0.0, 0
    arrivals: list[Arrival] = []
    start = clock.now()

    def elapsed() -> float:
        return (clock.now() - start).total_seconds()

    try:
        async with operator_api(app) as api:
            site: dict[str, object] = {"site_id": "s", "phase_limit_a": LIMIT_A,
                                       "fallback_current_a": None}  # fmt: skip
            if reserve_a:
                site["arrival_reserve_a"] = reserve_a
            (await api.post("/sites", json=site)).raise_for_status()
            fleet = Fleet(
                FleetConfig(
                    url=f"ws://127.0.0.1:{app.port}/ocpp", chargers=CHARGERS, v201_share=0.5,
                    connectors=1, speed=speed, arrival_rate=0.0, id_tags=["T"],
                    meter_interval=1, heartbeat_interval=3600, max_power_w=22_080.0,
                ),
                clock=clock,
            )  # fmt: skip
            await fleet.start()
            if not await fleet.wait_online(60.0):
                raise RuntimeError("the chargers did not all boot")

            def check() -> None:
                nonlocal peak, checks
                assert fleet is not None
                total = 0.0
                for charger in fleet.chargers:
                    s = charger.connectors[1].session
                    if s is None or s.stop_reason is not None:
                        continue
                    draw = s.power_w / (VOLTAGE * s.ev.spec.phases)
                    total += draw
                    for a in arrivals:
                        if a.charger == charger.cfg.charger_id and a.drawing_after is None:
                            if draw >= 1.0:
                                a.drawing_after = elapsed() - a.plugged_at
                checks += 1
                peak = max(peak, total)

            for charger in fleet.chargers:
                charger.on_draw = check
                place = {"site_id": "s", "max_current_a": 16}
                r = await api.put(f"/chargers/{charger.cfg.charger_id}/site", json=place)
                r.raise_for_status()
            await clock.sleep(30)  # failsafe profiles in place
            ev = EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=22.0), soc=10.0, target_soc=95.0)
            for charger in fleet.chargers[:2]:
                await charger.start_session(1, "T", ev)
            await clock.sleep(120)
            for n, charger in enumerate(fleet.chargers[2:], start=3):
                arrival = Arrival(charger.cfg.charger_id, elapsed())
                arrivals.append(arrival)
                await charger.start_session(1, "T", ev)
                share = (LIMIT_A - (reserve_a if n < CHARGERS else 0.0)) / n - 0.2
                while arrival.at_share_after is None and elapsed() - arrival.plugged_at < 120:
                    s = charger.connectors[1].session
                    if s is not None and s.power_w / (VOLTAGE * 3) >= share:
                        arrival.at_share_after = elapsed() - arrival.plugged_at
                    await asyncio.sleep(0.01)
                await clock.sleep(max(0.0, 120 - (elapsed() - arrival.plugged_at)))
    finally:
        if fleet is not None:
            await fleet.stop()
        await app.stop()
    return Outcome(reserve_a, peak, checks, arrivals)


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def main(reserves: list[float], speed: float) -> None:
    db = Database()
    await db.start()
    try:
        for reserve in reserves:
            async with db.fresh() as dsn:
                o = await run(dsn, reserve, speed)
            waits = ", ".join(
                f"arrival {i}: drawing after {_s(a.drawing_after)}, "
                f"at its share after {_s(a.at_share_after)}"
                for i, a in enumerate(o.arrivals, start=1)
            )
            print(
                f"reserve {reserve:g} A: peak {o.peak_a:.1f} A of {LIMIT_A:g} A "
                f"({o.checks} checks); {waits}"
            )
    finally:
        db.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reserve", default="0,6", help="arrival_reserve_a values (A)")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated s per real s")
    args = parser.parse_args()
    asyncio.run(main([float(x) for x in args.reserve.split(",")], args.speed))
