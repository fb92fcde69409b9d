"""The same meter values raise the same alerts whether the engine holds them or reads them.

With two nodes (or workers) the alert engine runs on the lease holder: the meter
values of a charger connected to it are the events it stored itself (handed over
as they are), those of a charger on the other node are rows it reads and decodes
(feed_decode.parse: orjson, samples built from their slots). One charger on each
node sends the same sequence; their alerts must be the same, field for field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from csms.monitoring.alerts_service import AlertService
from tests.conftest import RunningCsms, StartCsms
from tests.csms.cluster.test_two_nodes import two_nodes
from tests.csms.monitoring.alerting import FAST_ALERTS
from tests.csms.monitoring.test_alerts import boot16, meter16, now
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

FAULTS = {"voltage_out_of_band", "overcurrent", "temperature_high", "register_backwards",
          "register_jump"}  # fmt: skip
CLEARED = {"voltage_out_of_band", "overcurrent", "register_backwards"}  # recovered: resolve


def sequence(t: datetime) -> list[Any]:
    """Meter faults on four connectors, their recovery, then a register jump."""
    calls: list[Any] = []
    for i in range(3):  # 60 s apart on the charger's clock: the 60 s hold is met
        at = t + timedelta(seconds=60 * i)
        calls.append(meter16(1, at, ("Voltage", 195.0, "L1-N"), ("Voltage", 231.0, "L2-N")))
        calls.append(meter16(2, at, ("Current.Import", 45.0, "L1"), ("Current.Import", 44.5, "L2")))
        calls.append(meter16(3, at, ("Temperature", 40.0 + 20 * i, None)))
        calls.append(meter16(4, at, ("Energy.Active.Import.Register", 9000.0 - 1000 * i, None)))
    at = t + timedelta(seconds=240)
    calls.append(meter16(1, at, ("Voltage", 229.0, "L1-N")))
    calls.append(meter16(2, at, ("Current.Import", 16.0, "L1")))
    calls.append(meter16(4, at, ("Energy.Active.Import.Register", 7100.0, None)))
    jump = ("Energy.Active.Import.Register", 57_100.0, None)  # 50 kWh in a minute
    calls.append(meter16(4, at + timedelta(seconds=60), jump))
    return calls


async def alerts_of(pool: asyncpg.Pool, charge_point_id: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        """
        SELECT rule, evse_id, connector_id, severity, message, count, evidence::text,
               resolved_at IS NULL AS unresolved
        FROM alerts WHERE charge_point_id = $1 ORDER BY rule, connector_id
        """,
        charge_point_id,
    )
    return [tuple(r.values()) for r in rows]


async def test_meter_alerts_are_the_same_for_a_charger_on_either_node(
    start_csms: StartCsms,
) -> None:
    a, b = await two_nodes(start_csms, **FAST_ALERTS)
    engine: RunningCsms = a if a.app.leases.holds("alerts") else b
    other = b if engine is a else a
    service = next(s for s in engine.app.services if isinstance(s, AlertService))
    t = now()
    for node, charge_point_id in ((engine, "CP-HELD"), (other, "CP-READ")):
        async with charger_v16(node.ocpp_url, charge_point_id) as cp:
            await boot16(cp)
            for call in sequence(t):
                await cp.call(call)

    async def settled() -> bool:
        held = await alerts_of(a.pool, "CP-HELD")
        read = await alerts_of(a.pool, "CP-READ")
        resolved = {r[0] for r in held if not r[-1]}
        return FAULTS <= {r[0] for r in held} and CLEARED <= resolved and held == read

    assert await engine.app.bus.caught_up()
    try:
        await eventually(settled, within=30)
    except AssertionError:  # show the difference
        assert await alerts_of(a.pool, "CP-HELD") == await alerts_of(a.pool, "CP-READ")
        raise
    assert service.leader.leading  # one engine judged both
