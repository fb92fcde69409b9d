"""A CDR at session end: two round trips, the same price as the step-by-step reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from ocpp.v16 import call

from billing import cdrs, store
from billing.cdr_inputs import read_running
from billing.pricing import price_session
from billing.tariff import Tariff
from billing.usage import find_session, load_usage
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MAX_POWER_W = D(22_000)

pytestmark = pytest.mark.timeout(60)


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class CountingConnection:
    """A connection that counts the round trips made through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.round_trips: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._conn, name)
        if name not in {"execute", "fetch", "fetchrow", "fetchval", "executemany"}:
            return method

        async def counted(query: str, *args: Any) -> Any:
            self.round_trips.append(" ".join(query.split())[:60])
            return await method(query, *args)

        return counted


async def ended_session(csms: RunningCsms) -> int:
    """A 1.6 session with register and power samples and two charging states."""
    async with charger_v16(csms.ocpp_url, "CP-RT") as cp:
        start = await cp.call(
            call.StartTransaction(connector_id=1, id_tag="FLEET-1", meter_start=1000,
                                  timestamp=ts(T0))
        )  # fmt: skip
        tx = start.transaction_id
        for minutes, state in ((1, "Charging"), (40, "SuspendedEV")):
            await cp.call(call.StatusNotification(
                connector_id=1, error_code="NoError", status=state,
                timestamp=ts(T0 + timedelta(minutes=minutes))))  # fmt: skip
        for minutes, wh, w in ((10, 2000, 7000), (30, 5000, 7200), (50, 6000, 0)):
            at = ts(T0 + timedelta(minutes=minutes))
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": at, "sampledValue": [
                    {"value": str(wh), "measurand": "Energy.Active.Import.Register"},
                    {"value": str(w), "measurand": "Power.Active.Import"}]}]))  # fmt: skip
        await cp.call(
            call.StopTransaction(meter_stop=6500, timestamp=ts(T0 + timedelta(hours=1)),
                                 transaction_id=tx)
        )  # fmt: skip
    session_id: int = await csms.pool.fetchval("SELECT id FROM sessions WHERE status = 'ended'")
    return session_id


async def test_a_cdr_is_read_in_one_statement_and_written_in_one(start_csms: StartCsms) -> None:
    csms = await start_csms(billing_sweep_interval=0, billing_cost_update_interval=0)
    await csms.add_token("FLEET-1", group_id="FLEET")
    tou = Tariff(currency="EUR", price_per_kwh=D("0.30"), price_per_parking_minute=D("0.10"),
                 parking_grace_minutes=D(5), flat_fee=D("0.50"), vat_rate=D("0.19"))  # fmt: skip
    fleet = await store.create_tariff(csms.pool, "fleet", tou)
    default = await store.create_tariff(csms.pool, "default", Tariff(currency="EUR"))
    await store.assign(csms.pool, "default", "", default.id)
    await store.assign(csms.pool, "token_group", "FLEET", fleet.id)
    session_id = await ended_session(csms)
    stored = dict(await csms.pool.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session_id))
    event = await csms.pool.fetchrow("SELECT * FROM events WHERE type = 'cdr_created'")
    assert json.loads(event["payload"])["cdr_id"] == stored["id"]
    assert event["charge_point_id"] == "CP-RT"
    assert stored["tariff_id"] == fleet.id and stored["token_group"] == "FLEET"
    assert stored["total_energy_wh"] == 5500

    # Made again from scratch through a counting connection: one read, one write.
    await csms.pool.execute("DELETE FROM events WHERE type = 'cdr_created'")
    await csms.pool.execute("ALTER TABLE cdrs DISABLE TRIGGER USER")  # immutable rows
    await csms.pool.execute("DELETE FROM cdrs")
    await csms.pool.execute("ALTER TABLE cdrs ENABLE TRIGGER USER")
    now = datetime.now(UTC)
    async with csms.pool.acquire() as raw, raw.transaction():
        conn = CountingConnection(raw)
        created = await cdrs.create_cdr(conn, session_id, now, "EUR", MAX_POWER_W)  # type: ignore[arg-type]
        assert created is not None
        assert len(conn.round_trips) == 2, conn.round_trips
        # a repeated end: one read, nothing written
        again = await cdrs.create_cdr(conn, session_id, now, "EUR", MAX_POWER_W)  # type: ignore[arg-type]
        assert again is None and len(conn.round_trips) == 3, conn.round_trips
    remade = dict(await csms.pool.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session_id))
    assert remade["id"] == created.cdr_id
    events = await csms.pool.fetch("SELECT payload FROM events WHERE type = 'cdr_created'")
    assert [json.loads(e["payload"])["cdr_id"] for e in events] == [created.cdr_id]

    # The same price as the step-by-step reads (find the session, its scopes, the
    # tariff they choose, its samples and states one by one) give.
    async with csms.pool.acquire() as conn:
        session = await find_session(conn, session_id)
        assert session is not None
        scopes = await store.scopes_of(conn, session.charge_point_id, session.id_token)
        chosen = await store.choose_tariff(conn, scopes)
        usage = await load_usage(conn, session, now, MAX_POWER_W)
    assert chosen is not None
    priced = price_session(chosen.stored.tariff, usage)
    assert chosen.stored.id == remade["tariff_id"] == fleet.id
    assert scopes.token_group == remade["token_group"] == "FLEET"
    data = cdrs.priced_json(priced)
    assert json.loads(remade["items"]) == data["items"]
    assert json.loads(remade["energy_by_period"]) == data["energy_by_period"]
    assert remade["total_cost"] == priced.total == stored["total_cost"]
    assert remade["parking_seconds"] == D(data["parking_seconds"]) > 0  # SuspendedEV read
    assert list(remade["flags"]) == data["flags"]
    for name in ("total_energy_wh", "charging_seconds", "total_net", "total_tax", "start_at",
                 "end_at", "meter_start_wh", "meter_stop_wh", "site_id"):  # fmt: skip
        assert remade[name] == stored[name], name


async def test_no_cdr_for_a_running_or_unknown_session(start_csms: StartCsms) -> None:
    csms = await start_csms(billing_sweep_interval=0, billing_cost_update_interval=0)
    await csms.add_token("FLEET-1")
    async with charger_v16(csms.ocpp_url, "CP-RUN") as cp:
        await cp.call(call.StartTransaction(connector_id=1, id_tag="FLEET-1", meter_start=0,
                                            timestamp=ts(T0)))  # fmt: skip
    running = await csms.pool.fetchval("SELECT id FROM sessions")
    now = datetime.now(UTC)
    async with csms.pool.acquire() as conn:
        assert await cdrs.create_cdr(conn, running, now, "EUR", MAX_POWER_W) is None
        assert await cdrs.create_cdr(conn, running + 1000, now, "EUR", MAX_POWER_W) is None
        # the running cost reads the same inputs in one round trip, no CDR id reserved
        counting = CountingConnection(conn)
        inputs = await read_running(counting, running, now)  # type: ignore[arg-type]
        assert len(counting.round_trips) == 1
        assert await read_running(conn, running + 1000, now) is None
    assert inputs is not None and inputs.cdr_id is None
    assert inputs.session.status == "active" and inputs.session.id_token == "FLEET-1"
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 0
    assert not await csms.pool.fetchval("SELECT is_called FROM cdrs_id_seq")  # no id taken
