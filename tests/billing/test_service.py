"""Billing's hold on the session-end transaction: failures never lose a session end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from ocpp.v16 import call

from billing import store
from billing.service import BillingService
from billing.tariff import Tariff
from csms.outbox import schemas
from csms.outbox.envelope import OutboxRow, messages_for
from csms.outbox.topics import Topic
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16

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
        row["id"], row["event_id"], row["type"], row["charge_point_id"], row["evse_id"],
        row["connector_id"], row["occurred_at"], row["recorded_at"], json.loads(row["payload"]),
    )  # fmt: skip
    [message] = messages_for(outbox_row)
    assert message.topic is Topic.CHARGING_SESSIONS and message.key == b"CP-R"
    schemas.validate(message.envelope)
    payload = message.envelope["payload"]
    assert (payload["total_energy_wh"], payload["total_cost"], payload["flags"]) == (
        "5000", "0.00", ["no_tariff"])  # fmt: skip
