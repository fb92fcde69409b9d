"""A site of simulated chargers on a limit that cannot feed them all, end to end.

Real CSMS, real Postgres, the simulator's EV model: it follows a new limit
after a reaction delay and a ramp (so it overdraws for a moment after a
decrease), tapers near full and leaves at its own departure time. The limit
is checked on what the chargers *report*: at every meter sample, the sum over
sessions of each one's latest Current.Import per line.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.ev import EVSpec, EVState
from tests.csms.api.conftest import Api
from tests.waiting import eventually

SPEED = 30.0  # simulated seconds per real second
SAMPLE_INTERVAL = 10  # simulated seconds: 3 samples a real second from each of ten chargers
CHARGERS = 10
SITE_LIMIT = 64.0  # A per line: ten 16 A chargers would need 160 A
SINGLE_PHASE = {5, 8}  # chargers whose EV charges on one line
LINES = ("L1", "L2", "L3")


@pytest.fixture
async def site_fleet(api: Api) -> AsyncIterator[Fleet]:
    await api.csms.add_token("FLEET")
    await api.operator.post(
        "/sites", json={"site_id": "depot", "phase_limit_a": SITE_LIMIT, "fallback_current_a": 0}
    )
    await api.operator.put("/sites/depot/groups/row-a", json={"phase_limit_a": 40})
    fleet = Fleet(
        FleetConfig(
            url=api.csms.ocpp_url, chargers=CHARGERS, v201_share=0.5, connectors=1, speed=SPEED,
            arrival_rate=0.0, meter_interval=SAMPLE_INTERVAL, id_tags=["FLEET"], seed=3,
            max_power_w=22_000.0,
        )
    )  # fmt: skip
    await fleet.start()
    assert await fleet.wait_online()
    for i, charger in enumerate(fleet.chargers):
        place = {"site_id": "depot", "max_current_a": 16}
        if i < 4:
            place["group_id"] = "row-a"  # a 40 A feeder inside the 64 A site
        answer = await api.operator.put(f"/chargers/{charger.cfg.charger_id}/site", json=place)
        assert answer.status_code == 200, answer.text
    yield fleet
    await fleet.stop()


def _ev(phases: int) -> EVState:
    # 3-phase 11 kW: 15.9 A per line at full power, more than the site can give ten of;
    # 1-phase 7.4 kW: 32 A on L1 (the load manager learns it from the meter values).
    kw = 11.0 if phases == 3 else 7.4
    spec = EVSpec(capacity_kwh=80.0, max_ac_kw=kw, phases=phases)
    return EVState(spec, soc=10.0, target_soc=95.0)


async def _line_sums(pool: asyncpg.Pool, since: datetime | None = None) -> list[dict[str, Any]]:
    """At every Current.Import sample: the sum per line of each session's latest value."""
    rows = await pool.fetch(
        "SELECT charge_point_id, evse_id, phase, value, sampled_at FROM meter_samples "
        "WHERE measurand = 'Current.Import' ORDER BY sampled_at, id"
    )
    latest: dict[tuple[str, str], float] = {}  # one connector per charger
    out = []
    for r in rows:
        latest[(r["charge_point_id"], r["phase"] or "L1")] = r["value"]
        sums = {
            line: sum(v for (_, p), v in latest.items() if p == line) for line in ("L1", "L2", "L3")
        }
        if since is None or r["sampled_at"] >= since:
            out.append({"at": r["sampled_at"], **sums})
    return out


async def test_ten_chargers_share_a_site_that_cannot_feed_them_all(
    api: Api, site_fleet: Fleet
) -> None:
    fleet = site_fleet
    pool = api.csms.pool
    # Sessions arrive one by one...
    for i, charger in enumerate(fleet.chargers):
        phases = 1 if i in SINGLE_PHASE else 3
        assert await charger.start_session(1, "FLEET", _ev(phases)) is not None
        await asyncio.sleep(0.05)

    async def everyone_charging() -> bool:
        load = (await api.reader.get("/sites/depot/load")).json()
        planned = [s["limit_a"] or 0.0 for s in load["sessions"]]
        return len(planned) == CHARGERS and all(a >= 6.0 for a in planned)

    await eventually(everyone_charging, within=20)

    async def single_phase_found() -> bool:
        load = (await api.reader.get("/sites/depot/load")).json()
        phases = {s["charge_point_id"]: s["phases"] for s in load["sessions"]}
        return all(
            phases[cp] == (1 if i in SINGLE_PHASE else 3) for i, cp in enumerate(_ids(fleet))
        )

    await eventually(single_phase_found, within=10)  # from their meter values
    await asyncio.sleep(1.5)  # let every EV report under its limit
    load = (await api.reader.get("/sites/depot/load")).json()
    assert all(line <= SITE_LIMIT + 0.05 for line in load["allocated_a"]), load
    row_a = [s for s in load["sessions"] if s["charge_point_id"] in _ids(fleet)[:4]]
    assert sum(s["limit_a"] for s in row_a) <= 40.0 + 1e-6

    # ...and some leave - two unplugged, two at their own departure time: the others get
    # the room, as soon as it is free.
    for charger in fleet.chargers[:2]:
        charger.stop_session(1, "Local")
    for charger in fleet.chargers[2:4]:
        session = charger.connectors[1].session
        assert session is not None
        session.ev = dataclasses.replace(session.ev, departure=fleet.clock.now())

    async def six_share_the_site() -> bool:
        load = (await api.reader.get("/sites/depot/load")).json()
        limits = [s["limit_a"] for s in load["sessions"]]
        return len(limits) == 6 and min(limits) >= 10.0

    await eventually(six_share_the_site, within=20)

    # A demand-response cut to 30 A per line is obeyed within seconds.
    cut_at = fleet.clock.now()
    answer = await api.operator.post("/sites/depot/demand-response", json={"limit_a": 30})
    assert answer.status_code == 200

    charging = set(_ids(fleet)[4:])

    async def obeyed() -> bool:
        # Cheap on purpose (it is polled): each line's sum of the latest values, and
        # only once every charger sampled after the cut.
        rows = await pool.fetch(
            "SELECT DISTINCT ON (charge_point_id, phase) charge_point_id, phase, value, sampled_at "
            "FROM meter_samples WHERE measurand = 'Current.Import' "
            "ORDER BY charge_point_id, phase, sampled_at DESC, id DESC"
        )
        fresh = all(r["sampled_at"] > cut_at for r in rows if r["charge_point_id"] in charging)
        sums = {line: sum(r["value"] for r in rows if r["phase"] == line) for line in LINES}
        return fresh and max(sums.values()) <= 30.0 + 0.3

    await eventually(obeyed, within=5)
    settled = cut_at + timedelta(seconds=3 * SPEED)  # three real seconds after the cut
    await eventually(lambda: _line_sums_after(pool, settled), within=10)
    for s in await _line_sums(pool, since=settled):
        assert max(s["L1"], s["L2"], s["L3"]) <= 30.0 + 0.3, s

    # The whole run: the measured sum never went above the site limit at any sample.
    sums = await _line_sums(pool)
    assert len(sums) > 100
    for s in sums:
        assert max(s["L1"], s["L2"], s["L3"]) <= SITE_LIMIT + 0.5, s

    events = await pool.fetch(
        "SELECT type, payload FROM events WHERE type IN ('charging_limit_set', "
        "'load_plan_computed') ORDER BY id"
    )
    assert {e["type"] for e in events} == {"charging_limit_set", "load_plan_computed"}


async def _line_sums_after(pool: asyncpg.Pool, since: datetime) -> bool:
    return len(await _line_sums(pool, since=since)) >= 10


def _ids(fleet: Fleet) -> list[str]:
    return [c.cfg.charger_id for c in fleet.chargers]
