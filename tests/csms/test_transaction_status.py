"""GetTransactionStatus is asked after a seqNo gap and after a reconnect with open transactions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result

from csms.transaction_status import TransactionStatusService, seq_gap
from tests.conftest import RunningCsms
from tests.ocpp_clients import charger_v201
from tests.waiting import eventually

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Station(ChargePoint):  # type: ignore[misc]
    """Answers GetTransactionStatus: the transaction is still on, nothing queued."""

    asked: list[str | None]

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        type(self).asked.append(transaction_id)
        return call_result.GetTransactionStatus(ongoing_indicator=True, messages_in_queue=False)


def event(event_type: str, seq_no: int) -> call.TransactionEvent:
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=(T0 + timedelta(minutes=seq_no)).isoformat(),
        trigger_reason="Authorized" if event_type == "Started" else "MeterValuePeriodic",
        seq_no=seq_no,
        transaction_info={"transaction_id": "TX-1"},
        evse={"id": 1, "connector_id": 1},
    )


async def boot(cs: Station) -> None:
    await cs.call(
        call.BootNotification(charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp")
    )


async def asked_reasons(csms: RunningCsms) -> list[dict[str, Any]]:
    rows = await csms.pool.fetch(
        "SELECT data FROM charger_reports WHERE action = 'GetTransactionStatus' ORDER BY id"
    )
    return [json.loads(r["data"]) for r in rows]


def test_seq_gap_rule() -> None:
    assert not seq_gap(None, 0) and seq_gap(None, 2)
    assert not seq_gap(3, 4) and not seq_gap(3, 2) and seq_gap(3, 5)


async def test_a_seq_gap_asks_the_charger(csms: RunningCsms) -> None:
    Station.asked = []
    async with charger_v201(csms.ocpp_url, "GAPPY", Station) as cs:
        await boot(cs)
        await cs.call(event("Started", 0))
        await cs.call(event("Updated", 1))
        assert await asked_reasons(csms) == []
        await cs.call(event("Updated", 3))  # seqNo 2 never arrived
        [status] = await eventually(lambda: asked_reasons(csms))
    assert Station.asked == ["TX-1"]
    assert status == {
        "transaction_id": "TX-1",
        "reason": "seq_gap",
        "ongoing_indicator": True,
        "messages_in_queue": False,
    }


async def test_a_reconnect_with_an_open_transaction_asks_the_charger(csms: RunningCsms) -> None:
    Station.asked = []
    async with charger_v201(csms.ocpp_url, "BACK", Station) as cs:
        await boot(cs)
        await cs.call(event("Started", 0))
    assert Station.asked == []  # the first connection had nothing open
    await eventually(
        lambda: csms.pool.fetchval(
            "SELECT NOT connected FROM chargers WHERE charge_point_id = 'BACK'"
        )
    )
    async with charger_v201(csms.ocpp_url, "BACK", Station):
        [status] = await eventually(lambda: asked_reasons(csms))
    assert status["reason"] == "reconnect" and status["transaction_id"] == "TX-1"
    assert Station.asked == ["TX-1"]


async def test_a_transaction_started_after_the_connect_is_not_asked_about(
    csms: RunningCsms,
) -> None:
    """The bus may hand the connect over late (a paced read, a consumer behind): by then
    the charger may have started a transaction, which was not open at the reconnect."""
    [service] = [s for s in csms.app.services if isinstance(s, TransactionStatusService)]
    Station.asked = []
    async with charger_v201(csms.ocpp_url, "LATE", Station) as cs:
        await boot(cs)
        await cs.call(event("Started", 0))
        connected_at_row = await csms.pool.fetchval(
            "SELECT max(id) FROM events WHERE charge_point_id = 'LATE' "
            "AND type = 'charger_connected'"
        )
        await service._after_reconnect("LATE", connected_at_row)  # the connect, seen late
        assert Station.asked == [] and await asked_reasons(csms) == []
        # As of a connect after the transaction's start, it was open then: asked.
        newest_row = await csms.pool.fetchval("SELECT max(id) FROM events")
        await service._after_reconnect("LATE", newest_row)
        assert Station.asked == ["TX-1"]
