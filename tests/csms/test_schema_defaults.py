"""After the fast check's yes, the schema's defaults are filled in as fastjsonschema does.

``fastjsonschema`` (``use_default``) fills in absent properties while it
validates; a payload accepted by ``jsonschema-rs`` instead gets them from
:mod:`csms.schema_defaults`. For every schema of both versions with a default,
valid payloads generated from the schema (some of them missing each optional
property) must come out of both identical, key order included.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator

from csms.schema_defaults import filler
from csms.validation import CALL, CALLRESULT, _compiled, _fast, _fast_accepts, first_error
from tests.csms.schema_payloads import payloads


def _schemas_with_defaults() -> list[tuple[int, str, str]]:
    found = []
    root = os.path.dirname(ocpp.__file__)
    for version, folder in (("1.6", "v16"), ("2.0.1", "v201")):
        for name in sorted(os.listdir(os.path.join(root, folder, "schemas"))):
            with open(os.path.join(root, folder, "schemas", name), encoding="utf-8-sig") as file:
                if '"default"' not in file.read():
                    continue
            stem = name.removesuffix(".json")
            if version == "2.0.1":
                kind = CALLRESULT if stem.endswith("Response") else CALL
                action = stem.removesuffix("Response").removesuffix("Request")
            else:
                kind = CALLRESULT if stem.endswith("Response") else CALL
                action = stem.removesuffix("Response")
            found.append((kind, action, version))
    return found


WITH_DEFAULTS = _schemas_with_defaults()


def test_the_schemas_with_defaults_are_found() -> None:
    assert (CALL, "TransactionEvent", "2.0.1") in WITH_DEFAULTS
    assert len(WITH_DEFAULTS) >= 10


@pytest.mark.parametrize(
    ("kind", "action", "version"), WITH_DEFAULTS, ids=[f"{v} {a} {k}" for k, a, v in WITH_DEFAULTS]
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_filled_like_the_compiled_validator(
    kind: int, action: str, version: str, data: st.DataObject
) -> None:
    schema = get_validator(kind, action, version).schema
    payload: Any = data.draw(payloads(schema))
    if _fast(kind, action, version) is not None:  # else tier 2 fills: nothing to compare
        assert _fast_accepts(kind, action, version, copy.deepcopy(payload))
    fill = filler(schema)  # None where every default is behind a $ref (not filled)
    by_filler, by_compiled, by_validation = (copy.deepcopy(payload) for _ in range(3))
    if fill is not None:
        fill(by_filler)
    _compiled(kind, action, version)(by_compiled)
    assert first_error(kind, action, version, by_validation) is None
    assert json.dumps(by_filler) == json.dumps(by_compiled) == json.dumps(by_validation)


def test_a_transaction_event_gets_its_defaults() -> None:
    payload: dict[str, Any] = {
        "eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "MeterValuePeriodic", "seqNo": 1,
        "transactionInfo": {"transactionId": "T"},
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": 1.5, "unitOfMeasure": {}}, {"value": 2, "unitOfMeasure": {"unit": "kWh"}}]}],
    }  # fmt: skip
    assert first_error(CALL, "TransactionEvent", "2.0.1", payload) is None
    assert payload["offline"] is False
    assert payload["meterValue"][0]["sampledValue"] == [
        {"value": 1.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 0}},
        {"value": 2, "unitOfMeasure": {"unit": "kWh", "multiplier": 0}},
    ]
    assert list(payload)[-1] == "offline"  # appended, as the compiled validator does


def test_a_schema_without_defaults_has_no_filler() -> None:
    assert filler(get_validator(CALL, "MeterValues", "1.6").schema) is None
