"""The load manager's SetChargingProfile requests are valid OCPP 1.6 and 2.0.1 messages."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.charge_point import remove_nones, snake_to_camel_case
from ocpp.messages import Call, _validate_payload

from csms.events import Protocol
from smart_charging import profiles

NOW = datetime(2026, 1, 15, 18, 0, tzinfo=UTC)
VERSIONS = {Protocol.V16: "1.6", Protocol.V201: "2.0.1"}


def _valid(protocol: Protocol, request: Any) -> dict[str, Any]:
    """The request as sent on the wire, after checking it against the version's schema."""
    payload: dict[str, Any] = snake_to_camel_case(remove_nones(asdict(request)))
    _validate_payload(Call("1", "SetChargingProfile", payload), VERSIONS[protocol])
    return payload


def _profile(protocol: Protocol, payload: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    if protocol is Protocol.V16:
        profile = payload["csChargingProfiles"]
        return profile, profile["chargingSchedule"]
    profile = payload["chargingProfile"]
    return profile, profile["chargingSchedule"][0]


@pytest.mark.parametrize("protocol", [Protocol.V16, Protocol.V201])
def test_a_plain_tx_profile_stays_relative_with_one_period(protocol: Protocol) -> None:
    request = profiles.tx_profile(protocol, 2, "42", 10.6, 3)
    profile, schedule = _profile(protocol, _valid(protocol, request))
    assert profile["chargingProfileKind"] == "Relative" and "startSchedule" not in schedule
    assert [p["limit"] for p in schedule["chargingSchedulePeriod"]] == [10.6]


@pytest.mark.parametrize(
    ("protocol", "purpose"),
    [(Protocol.V16, "ChargePointMaxProfile"), (Protocol.V201, "ChargingStationMaxProfile")],
)
def test_the_max_profile_covers_the_whole_charger_at_its_configured_maximum(
    protocol: Protocol, purpose: str
) -> None:
    request = profiles.max_profile(protocol, 32.0, 3, NOW)
    payload = _valid(protocol, request)
    assert payload.get("connectorId", payload.get("evseId")) == 0
    profile, schedule = _profile(protocol, payload)
    assert profile["chargingProfilePurpose"] == purpose
    assert profile.get("chargingProfileId", profile.get("id")) == profiles.MAX_PROFILE_ID
    assert profile["stackLevel"] == profiles.MAX_STACK_LEVEL
    assert profile["chargingProfileKind"] == "Absolute" and "transactionId" not in profile
    assert schedule["startSchedule"] == (NOW - timedelta(seconds=60)).isoformat()
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 32.0, "numberPhases": 3}
    ]
