"""The compiled validator and the reference (jsonschema Draft 4) read the schemas alike.

A payload the compiled validator accepts is never checked again, so a value it
accepts and the reference refuses (draft-06's ``-0.0`` / ``1.0`` as integers) would
reach the handlers unchecked. Each edge value is put into each field of a valid
payload of both versions; the two must agree on every one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import pytest
from ocpp.messages import get_validator

from csms.validation import CALL, _compiled

EDGE_VALUES: list[Any] = [
    -0.0, 0.0, 1.0, 1.5, -1, 0, 2**31, 2**63 - 1, -(2**63), 1e308, -1e308, 5e-324,
    True, False, None, "", "x" * 600, "-0", "\ufffd", [], {}, [1], {"a": 1},
]  # fmt: skip

VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                   "status": "Available", "info": "i"}),
    ("1.6", "MeterValues", {"connectorId": 1, "transactionId": 3, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]}),
    ("1.6", "StartTransaction", {"connectorId": 1, "idTag": "A", "meterStart": 0,
                                 "timestamp": "2026-01-01T00:00:00Z", "reservationId": 1}),
    ("1.6", "StopTransaction", {"meterStop": 1, "timestamp": "2026-01-01T00:00:00Z",
                                "transactionId": 1}),
    ("2.0.1", "TransactionEvent", {
        "eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "MeterValuePeriodic", "seqNo": 1,
        "transactionInfo": {"transactionId": "T"}, "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": 1.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}]}]}),
    ("2.0.1", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z", "evseId": 1,
                                     "connectorId": 1, "connectorStatus": "Available"}),
    ("2.0.1", "MeterValues", {"evseId": 1, "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 1}]}]}),
]  # fmt: skip


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path


def _with(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(payload)
    target: Any = mutated
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return mutated


@pytest.mark.parametrize(
    ("version", "action", "payload"), VALID, ids=[f"{v} {a}" for v, a, _ in VALID]
)
def test_compiled_and_reference_validators_agree(
    version: str, action: str, payload: dict[str, Any]
) -> None:
    reference = get_validator(CALL, action, version)
    compiled = _compiled(CALL, action, version)
    disagreements = []
    tried = 0
    for path in _leaves(payload):
        for value in EDGE_VALUES:
            candidate = _with(payload, path, value)
            tried += 1
            reference_ok = not any(True for _ in reference.iter_errors(candidate))
            try:
                compiled(copy.deepcopy(candidate))
                compiled_ok = True
            except fastjsonschema.JsonSchemaException:
                compiled_ok = False
            if reference_ok != compiled_ok:
                disagreements.append(("/".join(map(str, path)), value, reference_ok))
    assert tried > 50 and disagreements == []
