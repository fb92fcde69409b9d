"""What ``csms demo`` sets up: a depot site, tariffs, tokens, and the fleet's story.

Everything is set up the way an operator would: chargers are registered
(commissioned) in the database, then the site, the chargers' places, the
tariffs and their assignments go through the operator API, so the demo
exercises the same endpoints a deployment uses. Times below are simulated
seconds from the start of the fleet.

The story of the first simulated hour:

* the depot's fleet comes back (t = 1-4 min): six EVs on a site whose 50 A
  grid connection is far below what its chargers could draw (6 x 32 A), so
  the load manager throttles and re-shares, fleet tokens first;
* a public driver charges for 20 min and leaves (a CDR priced by energy under
  the time-of-use tariff, plus VAT), another stays 40 min for a 3 kWh top-up
  (the idle fee after a 10 min grace period);
* one public 1.6 charger's temperature drifts up by 50 °C over 20 min while
  it charges (temperature alerts, a lower health score);
* one public charger's connector faults at t = 10 min for 20 min (an alert
  that opens and later resolves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from charge_point_sim import FleetConfig
from charge_point_sim.scenario import Arrival, FaultSpec

SITE_ID = "depot"
SITE_LIMIT_A = 50.0  # per line: ~34.5 kW at 230 V, three lines
CHARGER_MAX_A = 32.0
FLEET_GROUP = "FLEET"
FLEET_TOKENS = ("FLEET-001", "FLEET-002", "FLEET-003")
PUBLIC_TOKENS = tuple(f"DEMO-{n:04d}" for n in range(1, 9))
FLEET_PRIORITY = 10
ID_PREFIX = "DEMO-CP"

PUBLIC_TARIFF: dict[str, Any] = {
    "name": "Public AC, time of use",
    "currency": "EUR",
    "time_zone": "Europe/Berlin",
    "price_per_kwh": "0.39",
    "periods": [
        {"name": "peak", "price_per_kwh": "0.49", "start": "17:00", "end": "21:00"},
        {"name": "night", "price_per_kwh": "0.29", "start": "22:00", "end": "06:00"},
    ],
    "price_per_parking_minute": "0.10",
    "parking_grace_minutes": "10",
    "vat_rate": "0.19",
}
FLEET_TARIFF: dict[str, Any] = {
    "name": "Fleet contract",
    "currency": "EUR",
    "time_zone": "Europe/Berlin",
    "price_per_kwh": "0.25",
    "vat_rate": "0.19",
}


@dataclass(frozen=True)
class Layout:
    """Which simulated charger plays which part (indices into the fleet)."""

    chargers: int
    depot: tuple[int, ...]
    public: tuple[int, ...]
    faulty: int
    overheating: int  # a 1.6 charger: 2.0.1 meter values carry no temperature

    def charger_id(self, index: int) -> str:
        return f"{ID_PREFIX}{index:04d}"  # as the simulator names its chargers

    @property
    def charger_ids(self) -> list[str]:
        return [self.charger_id(i) for i in range(self.chargers)]


def layout(chargers: int, v201_share: float = 0.5) -> Layout:
    """Half the chargers at the depot (at least 4), the rest public (at least 4)."""
    if chargers < 8:
        raise ValueError("the demo needs at least 8 chargers (4 at the depot, 4 public)")
    depot = tuple(range(max(4, chargers // 2)))
    public = tuple(range(len(depot), chargers))
    probe = FleetConfig(chargers=chargers, v201_share=v201_share)
    overheating = next(i for i in public if not probe.is_v201(i))
    faulty = next(i for i in public if i != overheating)
    return Layout(chargers, depot, public, faulty, overheating)


def fleet_config(plan: Layout, url: str, speed: float, duration: float | None) -> FleetConfig:
    """The simulated fleet: arrivals, faults and drivers' tokens of the story above."""
    schedule: list[Arrival] = []
    for n, index in enumerate(plan.depot):
        token = FLEET_TOKENS[n % len(FLEET_TOKENS)] if n % 2 == 0 else PUBLIC_TOKENS[n]
        schedule.append(
            Arrival(at=60.0 + 30 * n, charger=index, connector=1, id_tag=token,
                    soc=15.0, target_soc=90.0, capacity_kwh=75.0, dwell_s=5 * 3600.0)
        )  # fmt: skip
    short, idle, *_ = [i for i in plan.public if i not in (plan.faulty, plan.overheating)] or [
        plan.public[0],
        plan.public[0],
    ]
    schedule += [
        # 20 min of charging, then away: priced by energy.
        Arrival(at=90.0, charger=short, connector=1, id_tag=PUBLIC_TOKENS[0],
                soc=40.0, target_soc=90.0, capacity_kwh=60.0, dwell_s=1200.0),
        # 3 kWh top-up, then parked for the rest of 40 min: the idle fee.
        Arrival(at=100.0, charger=idle, connector=2, id_tag=PUBLIC_TOKENS[1],
                soc=70.0, target_soc=80.0, capacity_kwh=30.0, dwell_s=2400.0),
        # The overheating charger has a long session, so it reports temperatures.
        Arrival(at=120.0, charger=plan.overheating, connector=1, id_tag=PUBLIC_TOKENS[2],
                soc=10.0, target_soc=95.0, capacity_kwh=90.0, dwell_s=4 * 3600.0),
    ]  # fmt: skip
    faults = [
        FaultSpec("temperature-drift", at=300.0, charger=plan.overheating, connector=1,
                  duration=1200.0, factor=50.0),
        FaultSpec("faulted", at=600.0, charger=plan.faulty, connector=2, duration=1200.0,
                  code="GroundFailure"),
    ]  # fmt: skip
    return FleetConfig(
        url=url,
        chargers=plan.chargers,
        v201_share=0.5,
        connectors=2,
        speed=speed,
        duration=duration,
        arrival_rate=0.5,
        schedule=schedule,
        faults=faults,
        id_tags=[*PUBLIC_TOKENS, *FLEET_TOKENS],
        dwell_mean_s=5400.0,
        meter_interval=60,
        max_power_w=CHARGER_MAX_A * 230.0 * 3,
        id_prefix=ID_PREFIX,
        seed=17,
    )


class ProvisioningError(RuntimeError):
    """An operator-API call of the set-up was refused."""


async def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise ProvisioningError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    if response.status_code == 204 or not response.content:
        return {}
    body: dict[str, Any] = response.json()
    return body


async def provision(api: httpx.AsyncClient, plan: Layout) -> None:
    """Tokens, the depot site with its chargers, and the two tariffs, through the API."""
    for token in PUBLIC_TOKENS:
        await _ok(await api.put(f"/id-tokens/{token}", json={"status": "Accepted"}))
    for token in FLEET_TOKENS:
        await _ok(
            await api.put(
                f"/id-tokens/{token}", json={"status": "Accepted", "group_id": FLEET_GROUP}
            )
        )
    await _ok(
        await api.post(
            "/sites",
            json={"site_id": SITE_ID, "name": "Bus & van depot", "phase_limit_a": SITE_LIMIT_A},
        )
    )
    for index in plan.depot:
        await _ok(
            await api.put(
                f"/chargers/{plan.charger_id(index)}/site",
                json={"site_id": SITE_ID, "max_current_a": CHARGER_MAX_A},
            )
        )
    public = await _ok(await api.post("/tariffs", json=PUBLIC_TARIFF))
    fleet = await _ok(await api.post("/tariffs", json=FLEET_TARIFF))
    await _ok(
        await api.put("/tariff-assignments", json={"scope": "default", "tariff_id": public["id"]})
    )
    await _ok(
        await api.put(
            "/tariff-assignments",
            json={"scope": "token_group", "scope_id": FLEET_GROUP, "tariff_id": fleet["id"]},
        )
    )


async def prioritise_fleet(api: httpx.AsyncClient, done: set[str]) -> int:
    """Give active fleet-token sessions priority (what a fleet's back office would do)."""
    active = await _ok(await api.get("/sessions", params={"status": "active", "limit": 1000}))
    given = 0
    for session in active.get("items", []):
        key = f"{session['charge_point_id']}/{session.get('transaction_id')}"
        if (
            session.get("id_token") not in FLEET_TOKENS
            or key in done
            or not session.get("transaction_id")
        ):
            continue
        path = (
            f"/chargers/{session['charge_point_id']}/transactions/"
            f"{session['transaction_id']}/preferences"
        )
        answer = await api.put(path, json={"priority": FLEET_PRIORITY})
        if answer.status_code < 400:
            done.add(key)
            given += 1
    return given
