"""The compiled validator and jsonschema (the authority) give every payload the same verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

from csms.validation import CALL, CALLRESULT, accepts, first_error, warm

VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "MeterValues", {"connectorId": 1, "transactionId": 5, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": "10", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]}]}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
    ("1.6", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                 "timestamp": "2026-01-01T00:00:00Z"}),
    ("2.0.1", "TransactionEvent", {"eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z",
                                   "triggerReason": "MeterValuePeriodic", "seqNo": 3,
                                   "transactionInfo": {"transactionId": "t-1"}}),
    ("2.0.1", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                     "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
    ("2.0.1", "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                   "reason": "PowerUp"}),
]  # fmt: skip

WRONG_VALUES: list[Any] = [None, "x", -1, 1.5, [], {}, True, "y" * 600]


def mutations(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every payload that drops one field or puts a wrong value in one field, at any depth."""
    found: list[dict[str, Any]] = [payload | {"unexpected": 1}]

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(node, dict):
                dropped = copy.deepcopy(payload)
                parent = dropped
                for step in path:
                    parent = parent[step]
                del parent[key]
                found.append(dropped)
            for wrong in WRONG_VALUES:
                changed = copy.deepcopy(payload)
                parent = changed
                for step in path:
                    parent = parent[step]
                parent[key] = wrong
                found.append(changed)
            if isinstance(value, dict | list):
                walk(value, (*path, key))

    walk(payload, ())
    return found


@pytest.mark.parametrize(
    ("version", "action", "payload"), VALID, ids=[f"{v[0]}-{v[1]}" for v in VALID]
)
def test_verdicts_agree_with_jsonschema(version: str, action: str, payload: dict[str, Any]) -> None:
    assert first_error(CALL, action, version, copy.deepcopy(payload)) is None
    validator = get_validator(CALL, action, version)
    cases = mutations(payload)
    assert len(cases) > 20
    for case in cases:
        expected = best_match(validator.iter_errors(copy.deepcopy(case)))
        got = first_error(CALL, action, version, copy.deepcopy(case))
        assert (got is None) == (expected is None), case
        if expected is not None:
            assert got is not None and (got.validator, got.message) == (
                expected.validator,
                expected.message,
            )


def test_cached_key_conversion_matches_the_ocpp_library() -> None:
    from ocpp.charge_point import camel_to_snake_case

    from csms.connection import snake_case_keys

    payload = {
        "chargingStation": {"vendorName": "V", "modem": {"iccid": "1"}},
        "meterValue": [{"sampledValue": [{"unitOfMeasure": {"unit": "Wh"}, "phase": "L1"}]}],
        "evseId": 1, "ocppCSMSURL": "x", "SoC": 1, "idTokenInfo": {"groupIdToken": {}},
    }  # fmt: skip
    assert snake_case_keys(payload) == camel_to_snake_case(payload)


def test_key_conversion_keeps_scalars_lists_and_nesting() -> None:
    from ocpp.charge_point import camel_to_snake_case

    from csms.rpc_frames import snake_case_keys

    payload = {
        "idTag": None, "meterValue": [[{"sampledValue": 1}], 2.5, "x", True],
        "customData": {"vendorId": "V", "someExtra": {"deepKey": [{"aB": None}]}},
    }  # fmt: skip
    assert snake_case_keys(payload) == camel_to_snake_case(payload)
    assert snake_case_keys([{"connectorId": 1}, 3]) == [{"connector_id": 1}, 3]
    assert snake_case_keys("notADict") == "notADict"


OWN_CALLS: list[tuple[int, str, str, dict[str, Any]]] = [
    (CALL, "GetConfiguration", "1.6", {"key": ["ChargingScheduleAllowedChargingRateUnit"]}),
    (CALLRESULT, "GetConfiguration", "1.6", {"configurationKey": [
        {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"}]}),
    (CALL, "GetVariables", "2.0.1", {"getVariableData": [
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}}]}),
    (CALLRESULT, "GetVariables", "2.0.1", {"getVariableResult": [
        {"attributeStatus": "Accepted", "component": {"name": "SmartChargingCtrlr"},
         "variable": {"name": "RateUnit"}, "attributeValue": "A"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "action", "version", "payload"), OWN_CALLS)
def test_own_calls_accepted_as_the_library_does_and_left_as_they_are(
    kind: int, action: str, version: str, payload: dict[str, Any]
) -> None:
    sent = copy.deepcopy(payload)
    assert accepts(kind, action, version, sent)
    assert sent == payload  # no schema default filled in (attributeType: Actual)
    assert not get_validator(kind, action, version).is_valid(payload | {"unexpected": 1})
    assert not accepts(kind, action, version, payload | {"unexpected": 1})


def test_decimal_schemas_are_left_to_the_library() -> None:
    """The library caches validators by name: a float reading of a decimal schema breaks it."""
    import decimal

    import ocpp.messages

    ocpp.messages._validators.pop("SetChargingProfile_1.6", None)
    periods = [{"startPeriod": 0, "limit": 21.4}]
    payload = {"connectorId": 0, "csChargingProfiles": {
        "chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "W",
                             "chargingSchedulePeriod": periods}}}  # fmt: skip
    assert not accepts(CALL, "SetChargingProfile", "1.6", payload)  # the library decides
    message = ocpp.messages.Call("1", "SetChargingProfile", copy.deepcopy(payload))
    ocpp.messages._validate_payload(message, "1.6")  # reads 21.4 as a decimal: valid
    limit = message.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    assert limit[0]["limit"] == decimal.Decimal("21.4")


def test_warm_compiles_what_the_actions_have_and_skips_the_rest() -> None:
    # MeterValues: CALL and CALLRESULT; an unknown action: nothing (no error);
    # SetChargingProfile: its CALLRESULT only -- the library reads its CALL with
    # decimals, and a float copy compiled here first would replace the library's.
    assert warm("1.6", ["MeterValues", "NoSuchAction", "SetChargingProfile"]) == 3
