"""The compiled validator and jsonschema (the authority) give every payload the same verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

from csms.validation import CALL, first_error

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
