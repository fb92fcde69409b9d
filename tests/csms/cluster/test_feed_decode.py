"""Every event class survives the trip through its stored row: payload JSON, then decode.

Other nodes (and other workers) see events only as decoded rows, so a field the
decoder turns into the wrong type (a str for a datetime, a list for a tuple, an
int for a float) would reach their subscribers as something the writer never had.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

import billing  # noqa: F401  (plugins' event classes)
import handlers  # noqa: F401
import smart_charging  # noqa: F401
from csms.cluster import feed, feed_decode
from csms.events import Event, MeterSample, MeterSampled

WHEN = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
SAMPLE = MeterSample(
    sampled_at=WHEN, measurand="Energy.Active.Import.Register", value=1500.5, unit="Wh",
    phase=None, context="Sample.Periodic", location="Outlet",
)  # fmt: skip


def _value(hint: Any) -> Any:
    """A non-default value of the type ``hint`` names (None: leave the field's default)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(options[0]) if len(options) == 1 else None
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return (SAMPLE,) if inner is MeterSample else (_value(inner), _value(inner))
    if origin is dict:
        return {"key": [1, "two", None]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    return {bool: True, int: 42, float: 2.5, str: "text", datetime: WHEN}.get(hint)


def _instance(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "event_id":
            values[f.name] = uuid.uuid4()
            continue
        value = _value(hints[f.name])
        if value is not None:
            values[f.name] = value
    return cls(**values)


CLASSES = sorted(feed.event_classes().items())


@pytest.mark.parametrize("cls", [c for _, c in CLASSES], ids=[t for t, _ in CLASSES])
def test_an_event_decoded_from_its_row_equals_the_event(cls: type[Event]) -> None:
    event = _instance(cls)
    payload = json.loads(event.payload_json())
    decoded = feed.decode(event.type, event.charge_point_id, event.occurred_at,
                          event.event_id, payload)  # fmt: skip
    assert decoded == event
    for f in dataclasses.fields(cls):  # equal, and of the same types (1 == 1.0 == True)
        assert type(getattr(decoded, f.name)) is type(getattr(event, f.name)), f.name


@pytest.mark.parametrize("cls", [c for _, c in CLASSES], ids=[t for t, _ in CLASSES])
def test_a_payload_is_parsed_as_json_reads_it(cls: type[Event]) -> None:
    """orjson where it is used (meter values) reads what json reads, in the row's form too."""
    event = _instance(cls)
    text = event.payload_json()
    assert feed_decode.parse(event.type, text) == json.loads(text)
    spaced = json.dumps(json.loads(text))  # how Postgres prints jsonb: ", " and ": "
    assert feed_decode.parse(event.type, spaced) == json.loads(spaced)


def test_orjson_is_used_for_meter_values_and_not_where_an_integer_may_hide() -> None:
    assert feed_decode.parse("meter_sampled", "{}") == {}
    assert feed_decode._PARSE_PLANS["meter_sampled"] == ("evse_id", "connector_id")
    assert "seq_no" in feed_decode._PARSE_PLANS["session_updated"]
    feed_decode.parse("data_transfer_received", "{}")
    assert feed_decode._PARSE_PLANS["data_transfer_received"] is feed_decode._JSON_ONLY


BIG = 2**70  # orjson reads it as a float; json, which wrote it, as the integer


@pytest.mark.parametrize(
    "text",
    [
        f'{{"transaction_id": "7", "seq_no": {BIG}, "samples": []}}',
        f'{{"transaction_id": "7", "seq_no": -{BIG}}}',
        '{"transaction_id": "7", "seq_no": 3, "samples": [{"value": NaN}]}',
        '{"transaction_id": "\\ud800", "seq_no": 3}',
    ],
    ids=["integer beyond 64 bits", "negative", "NaN", "lone surrogate"],
)
def test_what_orjson_reads_differently_is_read_with_json(text: str) -> None:
    parsed = feed_decode.parse("session_updated", text)
    expected = json.loads(text)
    assert json.dumps(parsed) == json.dumps(expected)  # NaN != NaN: compare the texts
    assert type(parsed.get("seq_no")) is type(expected.get("seq_no"))


def test_a_decoded_meter_sample_equals_the_sample_and_is_still_frozen() -> None:
    event = _instance(feed.event_classes()["meter_sampled"])
    row = feed.FeedRow(
        (1, 1), WHEN, event_id=event.event_id, type=event.type,
        charge_point_id=event.charge_point_id, occurred_at=event.occurred_at,
        payload=event.payload_json(),
    )  # fmt: skip
    decoded = row.event
    assert isinstance(decoded, MeterSampled) and decoded == event
    sample = decoded.samples[0]
    assert sample == SAMPLE and hash(sample) == hash(SAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(sample, "value", 1.0)  # noqa: B010 (the frozen dataclass's __setattr__)
