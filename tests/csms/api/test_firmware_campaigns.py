"""A firmware campaign reaches every charger, offline ones when they come back, with progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result

from charge_point_sim import Fleet
from csms.events import RegistrationStatus
from csms.storage import chargers
from tests.csms.api.conftest import CHARGER, Api
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually


class LateCharger(ChargePoint):  # type: ignore[misc]
    @on("UpdateFirmware")
    def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        return call_result.UpdateFirmware()


async def campaign(api: Api, campaign_id: int) -> dict[str, Any]:
    answer = await api.reader.get(f"/firmware-campaigns/{campaign_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_campaign_updates_online_chargers_and_late_ones(api: Api, fleet: Fleet) -> None:
    await chargers.register(api.csms.pool, "LATE", RegistrationStatus.ACCEPTED)
    created = await api.operator.post(
        "/firmware-campaigns",
        json={
            "name": "fw 2.1",
            "location": "https://fw.example/2.1.bin",
            "retrieve_at": datetime.now(UTC).isoformat(),
            "charger_ids": [*CHARGER.values(), "LATE"],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert created.json()["targets"] == 3

    async def installed_on_the_fleet() -> Any:
        body = await campaign(api, campaign_id)
        statuses = {c["charge_point_id"]: c["status"] for c in body["chargers"]}
        return (
            body
            if statuses.get(CHARGER["ocpp1.6"]) == statuses.get(CHARGER["ocpp2.0.1"]) == "Installed"
            else None
        )

    body = await eventually(installed_on_the_fleet, within=20)
    assert (body["installed"], body["finished"]) == (2, False)
    late = next(c for c in body["chargers"] if c["charge_point_id"] == "LATE")
    assert late["sent_at"] is None  # offline: not sent yet

    async with charger_v16(api.csms.ocpp_url, "LATE", LateCharger) as cp:
        await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))

        async def late_sent() -> Any:
            chargers_ = (await campaign(api, campaign_id))["chargers"]
            return next(c for c in chargers_ if c["charge_point_id"] == "LATE")["answer"]

        assert await eventually(late_sent, within=10) == "Accepted"
        await cp.call(call.FirmwareStatusNotification(status="Downloading"))
        await cp.call(call.FirmwareStatusNotification(status="InstallationFailed"))
    body = await campaign(api, campaign_id)
    assert (body["installed"], body["done"], body["finished"]) == (2, 3, True)
    listing = (await api.reader.get("/firmware-campaigns")).json()["campaigns"]
    assert [c["id"] for c in listing] == [campaign_id]


async def test_cancelled_campaign_sends_nothing_more(api: Api) -> None:
    await chargers.register(api.csms.pool, "NEVER", RegistrationStatus.ACCEPTED)
    created = await api.operator.post(
        "/firmware-campaigns",
        json={
            "location": "https://fw.example/x.bin",
            "retrieve_at": datetime.now(UTC).isoformat(),
            "charger_ids": ["NEVER"],
        },
    )
    campaign_id = created.json()["id"]
    cancelled = await api.operator.post(f"/firmware-campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["finished"] is True
    again = await api.operator.post(f"/firmware-campaigns/{campaign_id}/cancel")
    assert again.status_code == 404
    signed_half = await api.operator.post(
        "/firmware-campaigns",
        json={"location": "x", "retrieve_at": datetime.now(UTC).isoformat(), "signature": "c2ln"},
    )
    assert signed_half.status_code == 422
