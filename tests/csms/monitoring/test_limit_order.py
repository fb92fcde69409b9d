"""``current_over_limit`` checks a reading against the limit stored before it, not a stale one.

The e2e smart-charging bench (600x clock) opened "current 32 A above the 0 A
charging limit" alerts while the site never exceeded its limit: the engine
learned smart charging's limits only on its periodic tick, so a paused EV
raised to 32 A drew (rightly) 32 A for two meter intervals before the tick
told the engine. Here the tick never runs (an hour apart): limits must come
from the event feed, in commit order with the readings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.storage import event_log
from smart_charging.events import ChargingLimitSet
from tests.conftest import StartCsms
from tests.csms.monitoring.alerting import alert_api
from tests.csms.monitoring.test_alerts import boot16, meter16, one
from tests.ocpp_clients import charger_v16

pytestmark = pytest.mark.timeout(60)


def told(charge_point_id: str, limit_a: float, previous_a: float | None) -> ChargingLimitSet:
    """An accepted TxProfile of the session on EVSE 1, as smart charging records it."""
    return ChargingLimitSet(
        charge_point_id=charge_point_id, site_id="S", evse_id=1, transaction_id="7",
        purpose="TxProfile", limit_a=limit_a, previous_limit_a=previous_a, phases=1,
        status="Accepted", reason="test", occurred_at=datetime.now(UTC),
    )  # fmt: skip


async def test_a_raised_limit_is_in_force_for_the_next_reading_and_overdraw_still_alerts(
    start_csms: StartCsms,
) -> None:
    async with (
        alert_api(start_csms, alerts_tick_interval=3600.0) as api,
        charger_v16(api.csms.ocpp_url, "CP-PAUSED") as paused,
        charger_v16(api.csms.ocpp_url, "CP-RAISED") as raised,
    ):
        await boot16(paused)
        await boot16(raised)
        async with api.csms.pool.acquire() as conn:
            await event_log.append(conn, told("CP-PAUSED", 0.0, None))
            await event_log.append(conn, told("CP-RAISED", 0.0, None))
            await event_log.append(conn, told("CP-RAISED", 32.0, 0.0))  # resumed
        t = datetime.now(UTC)
        for i in range(2):  # two meter intervals at 32 A, 300 s apart (charger clock)
            at = t + timedelta(seconds=300 * i)
            await raised.call(meter16(1, at, ("Current.Import", 32.0, "L1")))
            await paused.call(meter16(1, at, ("Current.Import", 32.0, "L1")))
        # A real over-draw: told 0 A, drawing 32 A for 300 s.
        alert = await one(api, "current_over_limit", within=15.0, charge_point_id="CP-PAUSED")
        assert "0 A charging limit" in alert["message"]
        # The resumed EV drew what it was told: no alert. Its readings were stored (and the
        # one feed handles them in that order) before the paused one's alerting reading.
        assert await api.unresolved("current_over_limit", charge_point_id="CP-RAISED") == []
