"""ConcurrentTx: a token already charging elsewhere is answered ConcurrentTx when asked to."""

from __future__ import annotations

from datetime import UTC, datetime

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import StartCsms
from tests.ocpp_clients import charger_v16, charger_v201

NOW = datetime.now(UTC).isoformat()


def start16(connector: int) -> call16.StartTransaction:
    return call16.StartTransaction(
        connector_id=connector, id_tag="CARD", meter_start=0, timestamp=NOW
    )


async def test_a_token_in_a_session_is_concurrent_elsewhere(start_csms: StartCsms) -> None:
    csms = await start_csms(concurrent_tx_window_hours=12.0)
    await csms.add_token("CARD")
    async with (
        charger_v16(csms.ocpp_url, "CP16") as cp,
        charger_v201(csms.ocpp_url, "CP201") as cs,
    ):
        await cp.call(call16.BootNotification(charge_point_model="m", charge_point_vendor="v"))
        await cs.call(
            call201.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            )
        )
        assert (await cp.call(call16.Authorize(id_tag="CARD"))).id_tag_info["status"] == "Accepted"
        first = await cp.call(start16(1))
        assert first.id_tag_info["status"] == "Accepted"

        assert (await cp.call(call16.Authorize(id_tag="card"))).id_tag_info[
            "status"
        ] == "ConcurrentTx"
        second = await cp.call(start16(2))
        assert second.id_tag_info["status"] == "ConcurrentTx"
        elsewhere = await cs.call(
            call201.Authorize(id_token={"id_token": "CARD", "type": "ISO14443"})
        )
        assert elsewhere.id_token_info["status"] == "ConcurrentTx"

        # Its own session's messages are not concurrent with itself.
        stopped = await cp.call(
            call16.StopTransaction(
                meter_stop=10, timestamp=NOW, transaction_id=second.transaction_id, id_tag="CARD"
            )
        )
        assert stopped.id_tag_info["status"] == "Accepted"
        stopped = await cp.call(
            call16.StopTransaction(
                meter_stop=10, timestamp=NOW, transaction_id=first.transaction_id, id_tag="CARD"
            )
        )
        assert stopped.id_tag_info["status"] == "Accepted"
        again = await cs.call(call201.Authorize(id_token={"id_token": "CARD", "type": "ISO14443"}))
        assert again.id_token_info["status"] == "Accepted"


async def test_off_by_default(start_csms: StartCsms) -> None:
    csms = await start_csms()
    await csms.add_token("CARD")
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        await cp.call(call16.BootNotification(charge_point_model="m", charge_point_vendor="v"))
        assert (await cp.call(start16(1))).id_tag_info["status"] == "Accepted"
        assert (await cp.call(start16(2))).id_tag_info["status"] == "Accepted"
