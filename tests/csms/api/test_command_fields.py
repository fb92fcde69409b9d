"""The friendly commands carry every field OCPP defines, in the version that has it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from tests.csms.api.conftest import CHARGER, Api

V16, V201 = CHARGER["ocpp1.6"], CHARGER["ocpp2.0.1"]
SOON = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
TX_PROFILE = {
    "id": 5,
    "stack_level": 0,
    "purpose": "tx",
    "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 10}]},
}


async def command(api: Api, charger: str, name: str, body: dict[str, Any]) -> Any:
    return await api.operator.post(f"/chargers/{charger}/commands/{name}", json=body)


@pytest.mark.parametrize(
    ("name", "body", "wire"),
    [
        ("reset", {"evse_id": 2}, {"type": "Immediate", "evseId": 2}),
        (
            "change_availability",
            {"operative": False, "connector_id": 1, "evse_connector_id": 1},
            {"operationalStatus": "Inoperative", "evse": {"id": 1, "connectorId": 1}},
        ),
        (
            "reserve_now",
            {
                "id_token": "DRIVER-1",
                "expires_at": SOON,
                "connector_type": "cType2",
                "group_id_token": "FLEET",
                "reservation_id": 4,
            },
            {"connectorType": "cType2", "groupIdToken": {"idToken": "FLEET", "type": "Central"}},
        ),
        (
            "remote_start",
            {
                "id_token": "DRIVER-1",
                "connector_id": 2,
                "charging_profile": TX_PROFILE,
                "group_id_token": "FLEET",
            },
            {"evseId": 2, "groupIdToken": {"idToken": "FLEET", "type": "Central"}},
        ),
        (
            "update_firmware",
            {
                "location": "https://fw/x.bin",
                "retrieve_at": SOON,
                "install_at": SOON,
                "signature": "c2ln",
                "signing_certificate": "PEM",
            },
            {
                "firmware": {
                    "location": "https://fw/x.bin",
                    "signature": "c2ln",
                    "signingCertificate": "PEM",
                }
            },
        ),
        (
            "trigger_message",
            {"message": "SignChargingStationCertificate"},
            {"requestedMessage": "SignChargingStationCertificate"},
        ),
        (
            "trigger_message",
            {"message": "StatusNotification", "connector_id": 1, "evse_connector_id": 1},
            {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        ),
    ],
)
async def test_v201_fields_reach_the_wire(
    api: Api, fleet: Fleet, name: str, body: dict[str, Any], wire: dict[str, Any]
) -> None:
    answer = await command(api, V201, name, body)
    assert answer.status_code == 200, answer.text
    request = answer.json()["request"]
    for key, value in wire.items():
        if isinstance(value, dict) and key == "firmware":
            assert value.items() <= request[key].items()
            assert "installDateTime" in request[key]
        else:
            assert request[key] == value, (key, request)
    if name == "remote_start":
        assert request["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"


async def test_v16_translations_of_the_new_fields(api: Api, fleet: Fleet) -> None:
    started = await command(
        api,
        V16,
        "remote_start",
        {"id_token": "DRIVER-1", "connector_id": 1, "charging_profile": TX_PROFILE},
    )
    assert started.status_code == 200, started.text
    assert started.json()["request"]["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"

    reserved = await command(
        api,
        V16,
        "reserve_now",
        {"id_token": "DRIVER-1", "expires_at": SOON, "connector_id": 2, "group_id_token": "FLEET"},
    )
    assert reserved.json()["request"]["parentIdTag"] == "FLEET", reserved.text

    extended = await command(
        api, V16, "trigger_message", {"message": "SignChargingStationCertificate"}
    )
    assert extended.json()["request"] == {"requestedMessage": "SignChargePointCertificate"}
    assert extended.json()["response"]["status"] == "Accepted"


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        ("reset", {"evse_id": 1}, "whole charger"),
        ("change_availability", {"operative": True, "evse_connector_id": 1}, "evse_connector_id"),
        (
            "reserve_now",
            {"id_token": "A", "expires_at": SOON, "connector_type": "cType2"},
            "connector_type",
        ),
        ("remote_start", {"id_token": "A", "group_id_token": "G"}, "group id token"),
        (
            "remote_start",
            {"id_token": "A", "charging_profile": {**TX_PROFILE, "purpose": "tx_default"}},
            "TxProfile",
        ),
        (
            "update_firmware",
            {"location": "x", "retrieve_at": SOON, "signature": "c2ln"},
            "both signature and signing_certificate",
        ),
        (
            "update_firmware",
            {"location": "x", "retrieve_at": SOON, "install_at": SOON},
            "install time",
        ),
        ("trigger_message", {"message": "SignV2GCertificate"}, "cannot request"),
    ],
)
async def test_v16_refuses_what_it_cannot_say(
    api: Api, fleet: Fleet, name: str, body: dict[str, Any], why: str
) -> None:
    answer = await command(api, V16, name, body)
    assert answer.status_code == 400 and why in answer.json()["error"], answer.text


async def test_passwords_are_rotated_not_configured(api: Api, fleet: Fleet) -> None:
    body = {
        "variables": [
            {"component": "SecurityCtrlr", "variable": "BasicAuthPassword", "value": "x" * 20}
        ]
    }
    answer = await command(api, V201, "set_variables", body)
    assert answer.status_code == 400 and "password-rotation" in answer.json()["error"]
