"""Fault detection driven by the simulator: injected faults raise alerts, a healthy fleet none.

The simulator's clock runs faster than real time, so its timestamps run ahead
of the server's: these runs turn the clock-skew rule off
(``alerts_clock_skew_max=0``), which test_alerts.py covers on its own.
Detection delays are printed (``pytest -s``) in real and simulated seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.scenario import Arrival
from tests.conftest import StartCsms
from tests.csms.monitoring.alerting import AlertApi, alert_api
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)

NO_SKEW = {"alerts_clock_skew_max": 0.0}


async def _alert(api: AlertApi, rule: str, cp_id: str, within: float) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        items = await api.unresolved(rule, charge_point_id=cp_id)
        return items[0] if items else None

    found = await eventually(check, within)
    assert found is not None
    return found


async def _resolved(api: AlertApi, alert_id: int, within: float) -> None:
    async def check() -> bool:
        return bool((await api.reader.get(f"/alerts/{alert_id}")).json()["status"] == "resolved")

    await eventually(check, within)


@pytest.mark.parametrize("v201", [False, True], ids=["v16", "v201"])
async def test_injected_faults_raise_alerts_that_resolve(start_csms: StartCsms, v201: bool) -> None:
    speed = 120.0
    async with alert_api(start_csms, **NO_SKEW) as api:
        await api.csms.add_token("TAG1")
        fleet = Fleet(
            FleetConfig(
                url=api.csms.ocpp_url, chargers=1, v201_share=1.0 if v201 else 0.0, connectors=2,
                speed=speed, arrival_rate=0, meter_interval=30, id_tags=["TAG1"],
                schedule=[Arrival(at=0, charger=0, connector=1, soc=5, target_soc=95,
                                  capacity_kwh=200)],
                id_prefix="SIM201-" if v201 else "SIM16-",
            )
        )  # fmt: skip
        ch = fleet.chargers[0]
        cp_id = ch.cfg.charger_id
        await fleet.start()
        delays: dict[str, tuple[float, float]] = {}
        try:
            assert await fleet.wait_online()
            await eventually(lambda: asyncio.sleep(0, ch.connectors[1].session is not None), 10)
            await asyncio.sleep(1.0)  # a few meter values of healthy charging first

            # Faulted connector (the simulator's "faulted" fault kind).
            t0 = time.monotonic()
            await ch.fault(2, "GroundFailure")
            faulted = await _alert(api, "connector_faulted", cp_id, within=5)
            delays["connector_faulted"] = (time.monotonic() - t0, (time.monotonic() - t0) * speed)
            assert faulted["evse_id"] == 2 and faulted["severity"] == "critical"
            if not v201:
                assert "GroundFailure" in faulted["message"]

            # Stuck meter (the "stuck-meter" fault kind) on the charging connector.
            t0 = time.monotonic()
            ch.connectors[1].stuck_meter = True
            stuck = await _alert(api, "stuck_meter", cp_id, within=15)
            elapsed = time.monotonic() - t0
            delays["stuck_meter"] = (elapsed, elapsed * speed)
            assert stuck["evse_id"] == 1 and "stuck at" in stuck["message"]

            # Clear both: each resolves after the hold time.
            t0 = time.monotonic()
            await ch.clear_fault(2)
            ch.connectors[1].stuck_meter = False
            await _resolved(api, faulted["id"], within=5)
            await _resolved(api, stuck["id"], within=10)
            # Server side: from the Faulted status being stored to the alert row.
            server_delay = await api.csms.pool.fetchval(
                "SELECT extract(epoch FROM a.created_at - min(e.recorded_at)) FROM alerts a "
                "JOIN events e ON e.charge_point_id = a.charge_point_id "
                "AND e.type = 'connector_status_changed' AND e.payload->>'status' = 'Faulted' "
                "WHERE a.id = $1 GROUP BY a.created_at",
                faulted["id"],
            )
            print(f"\n{cp_id} detection delay (real s, simulated s): {delays}; Faulted stored "
                  f"-> alert stored {server_delay * 1000:.1f} ms; "
                  f"resolved {time.monotonic() - t0:.2f} s after clearing")  # fmt: skip
        finally:
            await fleet.stop()
        kinds = [k for k, _ in await api.events(cp_id)]
        assert kinds.count("alert_opened") == 2 and kinds.count("alert_resolved") == 2
        # The stuck meter must not have raised anything else (no register jump when it
        # resumed: the register does not catch up, and no overcurrent).
        rules = {a["rule"] for a in await api.alerts(charge_point_id=cp_id)}
        assert rules == {"connector_faulted", "stuck_meter"}


async def test_healthy_accelerated_fleet_raises_no_alert(start_csms: StartCsms) -> None:
    """Six chargers of both versions, ~6 simulated hours of random sessions: zero alerts."""
    async with alert_api(start_csms, **NO_SKEW) as api:
        await api.csms.add_token("SIMTAG")
        fleet = Fleet(
            FleetConfig(
                url=api.csms.ocpp_url, chargers=6, v201_share=0.5, connectors=2, speed=1200,
                duration=6 * 3600, arrival_rate=1.5, dwell_mean_s=2 * 3600, meter_interval=60,
                id_tags=["SIMTAG"], seed=11,
            )
        )  # fmt: skip
        summary = await fleet.run()
        assert summary.sessions_started >= 10, summary.format()
        assert summary.total_errors == 0, summary.format()
        service = next(s for s in api.csms.app.services if s.name == "alerts")
        await eventually(lambda: asyncio.sleep(0, True))
        samples = await api.csms.pool.fetchval("SELECT count(*) FROM meter_samples")
        alerts = await api.alerts()
        print(
            f"\nhealthy run: {summary.sessions_started} sessions, {summary.energy_kwh:.0f} kWh, "
            f"{samples} meter samples, {getattr(service, 'evaluated', '?')} events evaluated, "
            f"{summary.sim_seconds / 3600:.1f} simulated h in {summary.real_seconds:.1f} s: "
            f"{len(alerts)} alerts"
        )
        assert samples > 1000
        assert alerts == [], alerts
