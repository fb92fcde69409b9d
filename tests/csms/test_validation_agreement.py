"""The fast validators and the reference (jsonschema Draft 4) read the schemas alike.

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from csms.validation import CALL, CALLRESULT, _compiled, _fast, _fast_accepts
from tests.csms.schema_payloads import payloads

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


# Tier 1 (jsonschema-rs) must never accept what the reference refuses: its yes is
# final. Its no only costs time (tier 2 and the reference decide), so values it
# cannot read or refuses more strictly (NaN, a lone surrogate) are allowed.
MORE_EDGE_VALUES: list[Any] = [
    *EDGE_VALUES, float("nan"), float("inf"), -float("inf"), 2**64, 2**100, -(2**100),
    "\ud800", "x\x00", "2026-13-45T99:99:99Z", "Z" * 37, 1e-7, 10**20 + 0.5,
]  # fmt: skip


def _reference_accepts(kind: int, action: str, version: str, payload: Any) -> bool:
    return not any(True for _ in get_validator(kind, action, version).iter_errors(payload))


@pytest.mark.parametrize(
    ("version", "action", "payload"), VALID, ids=[f"{v} {a}" for v, a, _ in VALID]
)
def test_the_fast_check_accepts_nothing_the_reference_refuses(
    version: str, action: str, payload: dict[str, Any]
) -> None:
    assert _fast(CALL, action, version) is not None
    assert _fast_accepts(CALL, action, version, payload)
    wrongly_accepted = []
    refused = 0
    for path in _leaves(payload):
        for value in MORE_EDGE_VALUES:
            candidate = _with(payload, path, value)
            reference_ok = _reference_accepts(CALL, action, version, candidate)
            fast_ok = _fast_accepts(CALL, action, version, candidate)
            refused += not reference_ok
            if fast_ok and not reference_ok:
                wrongly_accepted.append(("/".join(map(str, path)), value))
    assert refused > 10 and wrongly_accepted == []


def _all_schemas() -> list[tuple[int, str, str]]:
    found = []
    for version, actions in (("1.6", Action16), ("2.0.1", Action201)):
        for action in sorted(action.value for action in actions):
            for kind in (CALL, CALLRESULT):
                if _fast(kind, action, version) is not None:
                    found.append((kind, action, version))
    return found


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _replace_somewhere(payload: Any, data: st.DataObject) -> Any:
    """``payload`` with one value (a leaf, an object, an array) replaced by any JSON."""
    paths = [path for path in _subtrees(payload) if path]
    if not paths:
        return data.draw(_JSON)
    path = data.draw(st.sampled_from(paths))
    if data.draw(st.booleans()):  # or a key added beside it (additionalProperties)
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict):
            mutated = copy.deepcopy(payload)
            target = mutated
            for step in path[:-1]:
                target = target[step]
            target[data.draw(st.text(max_size=12))] = data.draw(_JSON)
            return mutated
    return _with(payload, path, data.draw(_JSON))


def _subtrees(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _subtrees(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _subtrees(child, (*path, index))


ALL_FAST = _all_schemas()


@pytest.mark.parametrize(
    ("kind", "action", "version"), ALL_FAST, ids=[f"{v} {a} {k}" for k, a, v in ALL_FAST]
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_and_reference_agree_on_generated_payloads(
    kind: int, action: str, version: str, data: st.DataObject
) -> None:
    schema = get_validator(kind, action, version).schema
    valid = data.draw(payloads(schema))
    assert _reference_accepts(kind, action, version, valid)
    assert _fast_accepts(kind, action, version, copy.deepcopy(valid))  # else tier 1 is idle
    mutated = _replace_somewhere(valid, data)
    if _fast_accepts(kind, action, version, copy.deepcopy(mutated)):
        assert _reference_accepts(kind, action, version, mutated)
