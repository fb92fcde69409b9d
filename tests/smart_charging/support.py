"""Simulated chargers on one test site, and a spy on the profiles they receive."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.commands import SimCharger
from charge_point_sim.ev import EVSpec, EVState
from charge_point_sim.profiles import Profile
from tests.csms.api.conftest import Api
from tests.waiting import eventually

SITE_LIMIT = 32.0  # A per line of site "s"


async def start_site_fleet(
    api: Api, chargers: int, fallback_current_a: float | None = 0.0, meter_interval: int = 10
) -> Fleet:
    """One-connector chargers (half 1.6, half 2.0.1), online, and a site "s" of 32 A.

    The planner's tests run with a fixed 0 A TxDefaultProfile (a new session waits for
    its TxProfile), so what they see is the planner's alone; ``None`` gives the site the
    failsafe share (tests/smart_charging/test_failsafe.py). ``meter_interval``: simulated s
    between a session's meter values (long: the CSMS learns only from state reports).
    """
    await api.csms.add_token("T")
    site = {"site_id": "s", "phase_limit_a": SITE_LIMIT, "fallback_current_a": fallback_current_a}
    await api.operator.post("/sites", json=site)
    fleet = Fleet(
        FleetConfig(
            url=api.csms.ocpp_url, chargers=chargers, v201_share=0.5, connectors=1, speed=30.0,
            arrival_rate=0.0, meter_interval=meter_interval, id_tags=["T"], seed=5,
        )
    )  # fmt: skip
    await fleet.start()
    assert await fleet.wait_online()
    return fleet


async def place_all(api: Api, fleet: Fleet) -> None:
    """Put every charger of ``fleet`` on site "s" at 16 A."""
    for charger in fleet.chargers:
        answer = await api.operator.put(
            f"/chargers/{charger.cfg.charger_id}/site", json={"site_id": "s", "max_current_a": 16}
        )
        assert answer.status_code == 200, answer.text


ProfileSeen = Callable[[str, str, Profile], None]  # (charger id, its answer, the profile)


def watch_profiles(fleet: Fleet, seen: ProfileSeen) -> None:
    """Call ``seen`` for every SetChargingProfile a charger of ``fleet`` answers."""
    for charger in fleet.chargers:
        original = charger.set_profile

        def spy(
            evse_id: int,
            parse: Callable[[], Profile],
            original: Callable[[int, Callable[[], Profile]], str] = original,
            charger: SimCharger = charger,
        ) -> str:
            status = original(evse_id, parse)
            seen(charger.cfg.charger_id, status, parse())
            return status

        charger.set_profile = spy  # type: ignore[method-assign]


async def line_sums(
    pool: asyncpg.Pool, since: datetime | None = None, max_age_s: float | None = None
) -> list[dict[str, Any]]:
    """At every Current.Import sample: the sum per line of each session's latest value.

    With ``max_age_s``, instants at which some charger's latest value is older than that
    (simulated seconds) are left out: on a loaded machine a charger may not report for a
    while, and its last value, from before a decrease it has since applied, says nothing
    about that instant. Each row says how many values it was summed from (``values``).
    """
    rows = await pool.fetch(
        "SELECT charge_point_id, evse_id, phase, value, sampled_at FROM meter_samples "
        "WHERE measurand = 'Current.Import' ORDER BY sampled_at, id"
    )
    latest: dict[tuple[str, str], tuple[float, datetime]] = {}  # one connector per charger
    out = []
    for r in rows:
        at = r["sampled_at"]
        latest[(r["charge_point_id"], r["phase"] or "L1")] = (r["value"], at)
        if max_age_s is not None and any(
            (at - seen).total_seconds() > max_age_s and value > 0.0
            for value, seen in latest.values()
        ):
            continue
        sums = {
            line: sum(v for (_, p), (v, _) in latest.items() if p == line)
            for line in ("L1", "L2", "L3")
        }
        if since is None or at >= since:
            out.append({"at": at, "values": len(latest), **sums})
    return out


def three_phase_ev() -> EVState:
    """An 11 kW three-phase EV far from full (it takes any limit it is given)."""
    return EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3), soc=10.0, target_soc=95.0)


async def session_limits(api: Api, site_id: str = "s") -> list[float]:
    """The site's sessions' current limits (A), sorted; 0 for a session without one."""
    load: dict[str, Any] = (await api.reader.get(f"/sites/{site_id}/load")).json()
    return sorted(s["limit_a"] or 0.0 for s in load["sessions"])


async def start_three_sharing(api: Api, fleet: Fleet) -> None:
    """Place the fleet at site ``s`` and start :func:`three_phase_ev` sessions on its first
    three chargers; return once the site's plan shares it equally (10.6 A each)."""
    await place_all(api, fleet)
    for charger in fleet.chargers[:3]:
        assert await charger.start_session(1, "T", three_phase_ev()) is not None

    async def three_share() -> bool:
        return await session_limits(api) == [10.6, 10.6, 10.6]

    await eventually(three_share, within=15)
