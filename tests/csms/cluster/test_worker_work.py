"""A second node adds work instead of duplicating it (issue 18, docs/workers.md).

A node that neither holds the monitoring lease nor has a stream listener wants
none of another node's meter values: its bus leaves their payloads unread. Once
a stream listener arrives there, that node's session progress is still right
for a charger on the other node (its tracker starts from the active sessions).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from ocpp.v16 import call as call16

from csms.interop.service import InteropService
from csms.monitoring.live_service import LiveMonitoringService
from tests.conftest import StartCsms
from tests.csms.cluster.test_two_nodes import client, two_nodes
from tests.csms.monitoring.test_stream import BOOT16, T0, listening, meter
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)


async def test_an_idle_node_reads_no_other_nodes_meter_values_and_streams_them_right(
    start_csms: StartCsms,
) -> None:
    a, b = await two_nodes(start_csms)
    live_b = next(s for s in b.app.services if isinstance(s, LiveMonitoringService))
    assert not live_b.leader.leading and not live_b.hub.listened_to
    await a.add_token("DRIVER-W")
    async with charger_v16(a.ocpp_url, "CP-W") as cp:
        await cp.call(BOOT16)
        started = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="DRIVER-W", meter_start=1000, timestamp=T0.isoformat()
            )
        )
        tx = started.transaction_id

        async def sample(minute: int, register_wh: float) -> None:
            at = T0 + timedelta(minutes=minute)
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx,
                    meter_value=[meter(at, register_wh, 7000, 50)],
                )
            )

        await sample(1, 1300)
        assert await b.app.bus.caught_up(10)
        rows = [r for r in b.app.bus.rows_from(0) if r.charge_point_id == "CP-W"]
        samples = [r for r in rows if r.type in ("meter_sampled", "session_updated")]
        assert samples, [r.type for r in rows]
        assert not any(r.fetched for r in samples)  # nobody on node B wanted them
        # The boot's bookkeeping (forget other firmware's facts, probe) is node A's alone.
        [boot_b] = [r for r in rows if r.type == "charger_booted"]
        assert await a.app.bus.caught_up(10)
        [boot_a] = [
            r
            for r in a.app.bus.rows_from(0)
            if r.charge_point_id == "CP-W" and r.type == "charger_booted"
        ]
        interop_a, interop_b = (
            next(s for s in node.app.services if isinstance(s, InteropService)) for node in (a, b)
        )
        assert interop_a.wants(boot_a) and not interop_b.wants(boot_b)

        async with client(b, "read-only") as reader:
            async with listening(reader, charger="CP-W", type="session_progress") as listener:
                await sample(2, 1700)

                async def progressed() -> list[float]:
                    return [p["energy_wh"] for p in listener.of_type("session_progress")]

                # From the session's start (1000 Wh), not from what node B first saw.
                assert await eventually(progressed, within=10) == [700.0]
