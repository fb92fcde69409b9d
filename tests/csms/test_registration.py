"""The unknown-charger policy and what a charger may do before it is accepted."""

from __future__ import annotations

import json

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.config import UnknownChargerPolicy
from tests.conftest import StartCsms
from tests.ocpp_clients import charger_v16, charger_v201, raw_charger

BOOT16 = call16.BootNotification(charge_point_vendor="Acme", charge_point_model="W1")
BOOT_FRAME = {
    "ocpp1.6": json.dumps(
        [2, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}]
    ),
    "ocpp2.0.1": json.dumps(
        [
            2,
            "b",
            "BootNotification",
            {"chargingStation": {"model": "B", "vendorName": "A"}, "reason": "PowerUp"},
        ]
    ),
}
BOOT201 = call201.BootNotification(
    charging_station={"model": "W2", "vendor_name": "Acme"}, reason="PowerUp"
)


@pytest.mark.parametrize(
    ("policy", "status", "interval"),
    [
        (UnknownChargerPolicy.ACCEPT, "Accepted", 300),
        (UnknownChargerPolicy.PENDING, "Pending", 60),
        (UnknownChargerPolicy.REJECT, "Rejected", 60),
    ],
)
async def test_unknown_charger_policy(
    start_csms: StartCsms, policy: UnknownChargerPolicy, status: str, interval: int
) -> None:
    csms = await start_csms(unknown_charger_policy=policy)
    async with charger_v16(csms.ocpp_url, "NEW16") as cp:
        boot16 = await cp.call(BOOT16)
    async with charger_v201(csms.ocpp_url, "NEW201") as cs:
        boot201 = await cs.call(BOOT201)
    assert (boot16.status, boot16.interval) == (status, interval)
    assert (boot201.status, boot201.interval) == (status, interval)
    rows = await csms.pool.fetch(
        "SELECT registration, last_boot_status FROM chargers ORDER BY charge_point_id"
    )
    assert [tuple(r) for r in rows] == [(status, status)] * 2


async def test_known_charger_keeps_its_registration_whatever_the_policy(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(unknown_charger_policy=UnknownChargerPolicy.REJECT)
    await csms.pool.execute(
        "INSERT INTO chargers (charge_point_id, registration) VALUES ('KNOWN', 'Accepted')"
    )
    async with charger_v16(csms.ocpp_url, "KNOWN") as cp:
        assert (await cp.call(BOOT16)).status == "Accepted"
        assert (await cp.call(call16.Heartbeat())).current_time


@pytest.mark.parametrize("policy", [UnknownChargerPolicy.PENDING, UnknownChargerPolicy.REJECT])
@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_charger_not_accepted_gets_security_error_for_other_messages(
    start_csms: StartCsms, policy: UnknownChargerPolicy, protocol: str
) -> None:
    csms = await start_csms(unknown_charger_policy=policy, heartbeat_interval=120)
    async with raw_charger(csms.ocpp_url, "STRANGER", protocol) as charger:
        before_boot = await charger.exchange('[2, "h1", "Heartbeat", {}]')
        assert before_boot[:3] == [4, "h1", "SecurityError"]
        boot = BOOT_FRAME[protocol]
        assert (await charger.exchange(boot))[2]["status"] == policy.value.capitalize().replace(
            "Reject", "Rejected"
        )
        after_boot = await charger.exchange('[2, "h2", "Heartbeat", {}]')
        assert after_boot[:3] == [4, "h2", "SecurityError"]
    # An operator accepts it; the next boot is accepted and it may then speak.
    await csms.pool.execute("UPDATE chargers SET registration = 'Accepted'")
    async with raw_charger(csms.ocpp_url, "STRANGER", protocol) as charger:
        answer = await charger.exchange(boot)
        assert (answer[2]["status"], answer[2]["interval"]) == ("Accepted", 120)
        assert (await charger.answer_to('[2, "h3", "Heartbeat", {}]'))[0] == 3
