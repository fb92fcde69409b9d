"""A site's allocation policy reaches the running planner (real CSMS, simulated chargers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from charge_point_sim.ev import EVSpec, EVState
from tests.csms.api.conftest import Api
from tests.smart_charging.support import SITE_LIMIT, place_all, start_site_fleet
from tests.waiting import eventually


@pytest.fixture
async def fleet(api: Api) -> AsyncIterator[Fleet]:
    """Three one-connector chargers at 16 A on a 32 A site: two of them fit at a time."""
    fleet = await start_site_fleet(api, chargers=3)
    yield fleet
    await fleet.stop()


async def _policy(api: Api, policy: str) -> None:
    site = {"phase_limit_a": SITE_LIMIT, "fallback_current_a": 0.0, "allocation_policy": policy}
    answer = await api.operator.put("/sites/s", json=site)
    assert answer.status_code == 200, answer.text


async def _planned(api: Api, expected: dict[str, float]) -> dict[str, float]:
    """Wait until the load view plans the sessions as ``expected`` (charger -> A)."""

    async def view() -> dict[str, float]:
        load: dict[str, Any] = (await api.reader.get("/sites/s/load")).json()
        planned = {x["charge_point_id"]: x["planned_a"] for x in load.get("sessions", [])}
        return planned if planned == expected else {}

    return await eventually(view, within=30)


async def test_edf_then_fcfs_order_the_same_sessions_differently(api: Api, fleet: Fleet) -> None:
    await place_all(api, fleet)
    await _policy(api, "edf")
    ids = [c.cfg.charger_id for c in fleet.chargers]
    for charger in fleet.chargers:  # started in charger order: the first comes first
        ev = EVState(EVSpec(capacity_kwh=80.0, max_ac_kw=11.04, phases=3), soc=10.0,
                     target_soc=95.0)  # fmt: skip
        assert await charger.start_session(1, "T", ev) is not None

    async def active() -> list[Any]:
        rows = await api.csms.pool.fetch(
            "SELECT charge_point_id, transaction_id FROM sessions WHERE status = 'active' "
            "ORDER BY charge_point_id"
        )
        return rows if len(rows) == 3 else []

    rows = await eventually(active, within=30)
    now = datetime.now(UTC)
    # The first to arrive leaves last: EDF and FCFS disagree on who charges.
    leaves_in = {ids[0]: 8, ids[1]: 5, ids[2]: 2}
    for row in rows:
        departure = now + timedelta(hours=leaves_in[row["charge_point_id"]])
        answer = await api.operator.put(
            f"/chargers/{row['charge_point_id']}/transactions/{row['transaction_id']}/preferences",
            json={"departure_at": departure.isoformat(), "energy_wanted_wh": 30_000},
        )
        assert answer.status_code == 200, answer.text
    # EDF: the two leaving first get their 16 A, the third nothing (32 - 32 < 6 A).
    await _planned(api, {ids[2]: 16.0, ids[1]: 16.0, ids[0]: 0.0})
    await _policy(api, "fcfs")  # re-plans the site at once
    await _planned(api, {ids[0]: 16.0, ids[1]: 16.0, ids[2]: 0.0})
    await _policy(api, "fair")
    # Fair with these deadlines: ids[2] cannot be full (2 h < 30 kWh / 11.04 kW) and comes
    # first; ids[1] (5 h) before ids[0] (8 h): urgency, then max-min fair within a class.
    await _planned(api, {ids[2]: 16.0, ids[1]: 16.0, ids[0]: 0.0})
