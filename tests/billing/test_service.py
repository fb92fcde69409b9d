"""Billing's hold on the session-end transaction: failures never lose a session end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from ocpp.v16 import call
from ocpp.v201 import call as call201

from billing import store
from billing.service import BillingService
from billing.tariff import Tariff
from csms.outbox import schemas
from csms.outbox.envelope import OutboxRow, messages_for
from csms.outbox.topics import Topic
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16, charger_v201
from tests.waiting import eventually

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

pytestmark = pytest.mark.timeout(60)


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def one_session(csms: RunningCsms, meter_stop: int = 9000) -> int:
    async with charger_v16(csms.ocpp_url, "CP-S") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="TAG", meter_start=1000, timestamp=ts(T0))
        )
        stop = await cp.call(
            call.StopTransaction(
                meter_stop=meter_stop,
                timestamp=ts(T0 + timedelta(hours=1)),
                transaction_id=start.transaction_id,
            )
        )
        assert stop is not None
    session_id: int = await csms.pool.fetchval("SELECT id FROM sessions WHERE status = 'ended'")
    return session_id


async def test_a_pricing_failure_keeps_the_session_end_and_the_sweeper_catches_up(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(billing_sweep_interval=0, billing_cost_update_interval=0)
    await csms.add_token("TAG")
    tariff = await store.create_tariff(
        csms.pool, "t", Tariff(currency="EUR", price_per_kwh=D("0.25"))
    )
    await store.assign(csms.pool, "default", "", tariff.id)
    # Break billing's table for a moment: the CDR insert fails inside the session end.
    await csms.pool.execute("ALTER TABLE cdrs RENAME TO cdrs_away")
    session_id = await one_session(csms)
    await csms.pool.execute("ALTER TABLE cdrs_away RENAME TO cdrs")
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 0
    types = await csms.pool.fetch("SELECT type FROM events ORDER BY id")
    assert "session_ended" in [r["type"] for r in types]
    assert "cdr_created" not in [r["type"] for r in types]

    [billing] = [s for s in csms.app.services if isinstance(s, BillingService)]
    # Sessions that ended before billing was installed are history, not priced.
    installed = "UPDATE schema_migrations SET applied_at = applied_at + $1 WHERE version = 5"
    await csms.pool.execute(installed, timedelta(days=365))
    assert await billing.sweep() == 0
    await csms.pool.execute(installed, -timedelta(days=365))
    assert await billing.sweep() == 1
    cdr = await csms.pool.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session_id)
    assert cdr["total_energy_wh"] == 8000 and cdr["total_cost"] == D("2.00")
    assert await billing.sweep() == 0  # nothing left; a CDR is never written twice
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE type = 'cdr_created'") == 1


async def test_later_sweeps_read_recent_changes_and_retry_what_failed(
    start_csms: StartCsms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its first sweep a process reads only sessions changed lately
    (docs/database.md); one that failed is retried by id however old its change."""
    csms = await start_csms(billing_sweep_interval=0, billing_cost_update_interval=0)
    await csms.add_token("TAG")
    [billing] = [s for s in csms.app.services if isinstance(s, BillingService)]
    priced = billing._create_cdr

    async def failing(conn: object, session_id: int) -> None:
        raise RuntimeError("pricing is down")

    monkeypatch.setattr(billing, "_create_cdr", failing)
    session_id = await one_session(csms)
    assert await billing.sweep() == 1  # tried, failed
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 0
    # Its last change now lies before the window of the next sweep.
    await csms.pool.execute(
        "UPDATE sessions SET updated_at = now() - interval '2 days' WHERE id = $1", session_id
    )
    monkeypatch.setattr(billing, "_create_cdr", priced)
    assert await billing.sweep() == 1  # retried by id
    assert await csms.pool.fetchval("SELECT session_id FROM cdrs") == session_id
    assert await billing.sweep() == 0


async def test_a_session_with_no_tariff_gets_a_zero_cdr(csms: RunningCsms) -> None:
    await csms.add_token("TAG")
    session_id = await one_session(csms)
    cdr = await csms.pool.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session_id)
    assert cdr["total_cost"] == 0 and cdr["currency"] == "EUR"
    assert cdr["flags"] == ["no_tariff"] and cdr["total_energy_wh"] == 8000


async def test_a_repeated_session_end_keeps_the_first_cdr(csms: RunningCsms) -> None:
    """A charger that got no answer repeats its StopTransaction: one CDR, one cdr_created."""
    await csms.add_token("TAG")
    async with charger_v16(csms.ocpp_url, "CP-R") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=ts(T0))
        )
        for _ in range(2):
            await cp.call(
                call.StopTransaction(
                    meter_stop=5000,
                    timestamp=ts(T0 + timedelta(hours=1)),
                    transaction_id=start.transaction_id,
                )
            )
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 1
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE type = 'cdr_created'") == 1
    # What the relay publishes: cdr_created on charging-sessions, valid against its schema.
    row = await csms.pool.fetchrow("SELECT * FROM events WHERE type = 'cdr_created'")
    outbox_row = OutboxRow(
        row["id"],
        row["event_id"],
        row["type"],
        row["charge_point_id"],
        row["evse_id"],
        row["connector_id"],
        row["occurred_at"],
        row["recorded_at"],
        json.loads(row["payload"]),
    )
    [message] = messages_for(outbox_row)
    assert message.topic is Topic.CHARGING_SESSIONS and message.key == b"CP-R"
    schemas.validate(message.envelope)
    payload = message.envelope["payload"]
    assert (payload["total_energy_wh"], payload["total_cost"], payload["flags"]) == (
        "5000",
        "0.00",
        ["no_tariff"],
    )


async def test_site_tariff_and_connector_power_come_from_smart_charging(
    csms: RunningCsms,
) -> None:
    """A charger on site "depot" (16 A, one phase: 3 680 W) gets the site's tariff, and a
    meter step of 2 kWh in one minute (120 kW) is flagged and not billed."""
    await csms.add_token("TAG")
    tariff = await store.create_tariff(
        csms.pool, "depot", Tariff(currency="EUR", price_per_kwh=D(1))
    )
    await store.assign(csms.pool, "site", "depot", tariff.id)
    await csms.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-J')")
    await csms.pool.execute("INSERT INTO sc_sites (site_id) VALUES ('depot')")
    await csms.pool.execute(
        "INSERT INTO sc_charger_sites (charge_point_id, site_id, max_current_a, phases)"
        " VALUES ('CP-J', 'depot', 16, 1)"
    )
    async with charger_v16(csms.ocpp_url, "CP-J") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=ts(T0))
        )
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=[
                    {
                        "timestamp": ts(T0 + timedelta(minutes=10)),
                        "sampledValue": [{"value": "500"}],
                    }
                ],
            )
        )
        await cp.call(
            call.StopTransaction(
                meter_stop=2500,
                transaction_id=start.transaction_id,
                timestamp=ts(T0 + timedelta(minutes=11)),
            )
        )
    cdr = await csms.pool.fetchrow("SELECT * FROM cdrs")
    assert (cdr["site_id"], cdr["tariff_id"], cdr["tariff_scope"]) == ("depot", tariff.id, "site")
    assert cdr["flags"] == ["meter_jump"]
    assert cdr["total_energy_wh"] == 500 and cdr["total_cost"] == D("0.50")


async def test_a_session_cut_short_is_billed_to_its_last_reading(csms: RunningCsms) -> None:
    """A 2.0.1 transaction ended by a fault with no final meter value: the last reading counts."""
    await csms.add_token("TAG")
    tariff = await store.create_tariff(csms.pool, "t", Tariff(currency="EUR", price_per_kwh=D(1)))
    await store.assign(csms.pool, "default", "", tariff.id)
    async with charger_v201(csms.ocpp_url, "CS-F") as cs:
        for seq, (kind, minutes, wh) in enumerate(
            [("Started", 0, 1000), ("Updated", 20, 4200), ("Ended", 25, None)]
        ):
            meter = (
                []
                if wh is None
                else [
                    {
                        "timestamp": ts(T0 + timedelta(minutes=minutes)),
                        "sampledValue": [
                            {"value": wh, "measurand": "Energy.Active.Import.Register"}
                        ],
                    }
                ]
            )
            await cs.call(
                call201.TransactionEvent(
                    event_type=kind,
                    timestamp=ts(T0 + timedelta(minutes=minutes)),
                    seq_no=seq,
                    trigger_reason="AbnormalCondition" if wh is None else "MeterValuePeriodic",
                    transaction_info={"transaction_id": "TX-F"},
                    evse={"id": 1, "connector_id": 1},
                    meter_value=meter or None,
                )
            )
    cdr = await csms.pool.fetchrow("SELECT * FROM cdrs")
    assert cdr["total_energy_wh"] == 3200 and cdr["total_cost"] == D("3.20")
    assert cdr["meter_stop_wh"] == 4200 and cdr["flags"] == []


async def test_cost_updated_is_sent_periodically(start_csms: StartCsms) -> None:
    from tests.billing.test_api import CostAwareStation

    csms = await start_csms(billing_cost_update_interval=0.2, billing_sweep_interval=0)
    tariff = await store.create_tariff(csms.pool, "t", Tariff(currency="EUR", price_per_kwh=D(1)))
    await store.assign(csms.pool, "default", "", tariff.id)
    CostAwareStation.costs = []
    async with charger_v201(csms.ocpp_url, "CS-P", CostAwareStation) as cs:
        for seq, (kind, wh) in enumerate([("Started", 0), ("Updated", 1500)]):
            await cs.call(
                call201.TransactionEvent(
                    event_type=kind, timestamp=ts(T0 + timedelta(minutes=seq)), seq_no=seq,
                    trigger_reason="MeterValuePeriodic", evse={"id": 1, "connector_id": 1},
                    transaction_info={"transaction_id": "TX-P"},
                    meter_value=[{"timestamp": ts(T0 + timedelta(minutes=seq)), "sampledValue": [
                        {"value": wh, "measurand": "Energy.Active.Import.Register"}]}],
                )
            )  # fmt: skip
        await eventually(lambda: _repeated_total(CostAwareStation.costs, 1.5))
    totals = [total for total, tx in CostAwareStation.costs if tx == "TX-P"]
    assert totals == sorted(totals) and set(totals) <= {0.0, 1.5}  # 0 before the 1.5 kWh


async def _repeated_total(costs: list[tuple[float, str]], total: float) -> bool:
    """The running total was sent at least twice: the loop keeps going."""
    return [c[0] for c in costs].count(total) >= 2
