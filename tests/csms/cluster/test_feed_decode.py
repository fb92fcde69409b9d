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
from csms.cluster import feed
from csms.events import Event, MeterSample

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
