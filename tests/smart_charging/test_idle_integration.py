"""Full and idle EVs give their share back, end to end (lagging EV model, real CSMS).

Four 16 A chargers on a 32 A site. One EV is nearly full and stays plugged in
until its departure: once it draws nothing it drops to the lowest class and
the three others share the whole site; a probe offers it its minimum again
from time to time; when it wants energy again it is back in its class at
once; it leaves at its own departure time. The summed current the chargers
report stays under the limit at every stored sample throughout.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from charge_point_sim.ev import EVSpec, EVState
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api
from tests.smart_charging.conftest import open_api
from tests.smart_charging.support import SITE_LIMIT, line_sums, place_all, start_site_fleet
from tests.waiting import eventually


@pytest.fixture
async def idle_api(start_csms: StartCsms) -> AsyncIterator[Api]:
    async with open_api(
        start_csms,
        smart_charging_idle_after=1.0,  # real seconds: 30 simulated at the fleet's speed
        smart_charging_probe_interval=3.0,
        smart_charging_probe_window=1.5,
    ) as api:
        yield api


async def _load(api: Api) -> dict[str, Any]:
    load: dict[str, Any] = (await api.reader.get("/sites/s/load")).json()
    return load


def _by_charger(load: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["charge_point_id"]: s for s in load.get("sessions", [])}


async def test_a_full_ev_gives_its_share_back_is_probed_and_comes_back(idle_api: Api) -> None:
    api = idle_api
    fleet: Fleet = await start_site_fleet(api, chargers=4)
    try:
        await place_all(api, fleet)
        full_one = fleet.chargers[0]
        departs = fleet.clock.now() + timedelta(hours=3)
        # No taper below 99 %: back from full at 95 % the EV can draw its share again (with
        # the default taper from 80 % it accepts ~4.6 A there, is capped at what it draws,
        # and the check below met its 8 A share only if it looked before that cap).
        spec = EVSpec(capacity_kwh=80.0, max_ac_kw=11.0, phases=3, taper_start_soc=99.0)
        nearly_full = EVState(spec, soc=94.95, target_soc=95.0, departure=departs)
        nearly_full = dataclasses.replace(nearly_full, stays_plugged=True)
        assert await full_one.start_session(1, "T", nearly_full) is not None
        for charger in fleet.chargers[1:]:
            assert await charger.start_session(1, "T", EVState(spec, soc=10.0)) is not None
        full_id = full_one.cfg.charger_id

        async def others_get_the_whole_site() -> bool:
            sessions = _by_charger(await _load(api))
            others = [s for cp, s in sessions.items() if cp != full_id]
            full = sessions.get(full_id)
            return (
                full is not None
                and full["idle"]
                and len(others) == 3
                and all((s["limit_a"] or 0.0) >= 10.6 for s in others)
            )

        await eventually(others_get_the_whole_site, within=20)
        # The full EV is still plugged in (SuspendedEV): its session goes on.
        session = full_one.connectors[1].session
        assert session is not None and session.ev.full

        # A probe offers it its minimum again, in its own class, now and then.
        async def probed() -> bool:
            rows = await api.csms.pool.fetch(
                "SELECT payload FROM events WHERE type = 'charging_limit_set' "
                "AND charge_point_id = $1 AND payload->>'purpose' = 'TxProfile' ORDER BY id",
                full_id,
            )
            limits = [float(json.loads(r["payload"])["limit_a"]) for r in rows]
            # ... after having been paused (0 A) as the lowest class
            return 0.0 in limits and any(a >= 6.0 for a in limits[limits.index(0.0) :])

        await eventually(probed, within=20)

        # It wants energy again (say, the driver raised the target): back in its class.
        session.ev = dataclasses.replace(session.ev, target_soc=100.0)

        async def back() -> bool:
            full = _by_charger(await _load(api)).get(full_id)
            return full is not None and not full["idle"] and (full["limit_a"] or 0.0) >= 7.9

        await eventually(back, within=30)

        # And at its own departure time it leaves.
        session.ev = dataclasses.replace(session.ev, departure=fleet.clock.now())

        async def left() -> bool:
            return full_id not in _by_charger(await _load(api))

        await eventually(left, within=20)
        sums = await line_sums(api.csms.pool)
        assert len(sums) > 30
        for s in sums:
            assert max(s["L1"], s["L2"], s["L3"]) <= SITE_LIMIT + 0.5, s
    finally:
        await fleet.stop()
