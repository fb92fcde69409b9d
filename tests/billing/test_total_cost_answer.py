"""I02/I03: the TransactionEvent(Ended) answer carries totalCost when a tariff applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

from ocpp.v201 import call

from billing import store
from billing.tariff import Tariff
from tests.conftest import StartCsms
from tests.ocpp_clients import charger_v201

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def event(event_type: str, seq_no: int, kwh: float, tx: str) -> call.TransactionEvent:
    moment = (T0 + timedelta(minutes=30 * seq_no)).isoformat()
    info: dict[str, Any] = {"transaction_id": tx}
    if event_type == "Ended":
        info["stopped_reason"] = "Local"
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=moment,
        seq_no=seq_no,
        transaction_info=info,
        trigger_reason="Authorized" if event_type == "Started" else "StopAuthorized",
        evse={"id": 1, "connector_id": 1},
        id_token={"id_token": "TAG1", "type": "ISO14443"},
        meter_value=[
            {
                "timestamp": moment,
                "sampled_value": [
                    {
                        "value": kwh * 1000,
                        "measurand": "Energy.Active.Import.Register",
                        "context": "Transaction.Begin"
                        if event_type == "Started"
                        else "Transaction.End",
                    }
                ],
            }
        ],
    )


async def test_ended_answer_has_the_total_when_a_tariff_applies(start_csms: StartCsms) -> None:
    csms = await start_csms(billing_cost_update_interval=0, billing_sweep_interval=0)
    await csms.add_token("TAG1")
    async with charger_v201(csms.ocpp_url, "CS1") as cs:
        await cs.call(
            call.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            )
        )
        await cs.call(event("Started", 0, 100.0, "TX-free"))
        free = await cs.call(event("Ended", 1, 110.0, "TX-free"))
        assert free.total_cost is None  # no tariff: nothing to say

        tariff = Tariff(currency="EUR", price_per_kwh=D("0.50"), flat_fee=D(1), vat_rate=D(0))
        stored = await store.create_tariff(csms.pool, "flat", tariff)
        await store.assign(csms.pool, "default", "", stored.id)
        await cs.call(event("Started", 0, 200.0, "TX-paid"))
        paid = await cs.call(event("Ended", 1, 210.0, "TX-paid"))
    total = await csms.pool.fetchval("SELECT total_cost FROM cdrs WHERE transaction_id = 'TX-paid'")
    assert total == D("6.00")  # 1.00 + 10 kWh x 0.50
    assert paid.total_cost == 6.0
    assert paid.updated_personal_message["content"] == "Total: 6.00 EUR"
