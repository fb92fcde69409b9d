"""The durable event log outlives the outbox's pruning, with monthly partitions (15.6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import RunningCsms
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


async def test_boots_and_statuses_stay_after_the_outbox_is_pruned(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        await charger.exchange('[2, "b", "BootNotification", {"chargePointVendor": "V", '
                               '"chargePointModel": "M"}]')  # fmt: skip
        await charger.exchange('[2, "s", "StatusNotification", {"connectorId": 1, '
                               '"errorCode": "NoError", "status": "Available"}]')  # fmt: skip
        await charger.exchange('[2, "h", "Heartbeat", {}]')
    await eventually(
        lambda: csms.pool.fetchval("SELECT count(*) = 4 FROM event_history")  # +connect/disc.
    )
    await csms.pool.execute("UPDATE events SET published_at = now(), recorded_at = "
                            "now() - interval '30 days'")  # fmt: skip
    assert csms.app.outbox is not None
    assert await csms.app.outbox.prune() > 0
    assert await csms.pool.fetchval("SELECT count(*) FROM events") == 0
    kept = await csms.pool.fetch("SELECT type FROM event_history ORDER BY id")
    assert [r["type"] for r in kept] == [
        "charger_connected", "charger_booted", "connector_status_changed",
        "charger_disconnected"]  # fmt: skip


async def test_partitions_are_made_ahead_and_dropped_after_the_retention(
    csms: RunningCsms,
) -> None:
    from csms.storage import history

    now = datetime.now(UTC)
    await history.maintain(csms.pool, now, 365)
    month = now.strftime("%Y_%m")
    assert await csms.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"event_history_{month}")
    later = now + timedelta(days=500)
    dropped = await history.maintain(csms.pool, later, 365)
    assert f"event_history_{month}" in dropped
    assert await csms.pool.fetchval("SELECT to_regclass($1) IS NULL", f"event_history_{month}")


async def test_health_counts_reboots_and_faults_the_outbox_has_pruned(csms: RunningCsms) -> None:
    """Health over 30 days reads the durable log, not the week-long outbox."""
    from csms.monitoring.health_store import charger_stats

    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        await charger.exchange('[2, "b", "BootNotification", {"chargePointVendor": "V", '
                               '"chargePointModel": "M"}]')  # fmt: skip
        await charger.exchange('[2, "f", "StatusNotification", {"connectorId": 1, '
                               '"errorCode": "GroundFailure", "status": "Faulted"}]')  # fmt: skip
    await eventually(lambda: csms.pool.fetchval("SELECT count(*) >= 3 FROM event_history"))
    await csms.pool.execute("UPDATE events SET published_at = now(), recorded_at = "
                            "now() - interval '30 days'")  # fmt: skip
    assert csms.app.outbox is not None and await csms.app.outbox.prune() > 0
    stats = await charger_stats(csms.pool, datetime.now(UTC) - timedelta(days=30), 30.0, "CP")
    assert (stats["CP"].reboots, stats["CP"].faults) == (1, 1)
