"""Turning a stored event row back into its :class:`~csms.events.Event` subclass.

Fields come from the JSON payload, the envelope (charger, time, id) from the
row's columns. Each class's converters are built once from its type hints
(looking them up per field and value cost a node of two workers a tenth of its
CPU, docs/profiling.md). :func:`parse` reads the payload's JSON text: with
orjson where it gives what json gives (docs/profiling.md, "Meter values on the
lease holder").
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import sys
import types
import typing
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from csms.events import Event, MeterSample
from csms.meter import new_sample


def event_classes() -> dict[str, type[Event]]:
    """Every known event class by type (plugins' classes once their modules are imported)."""
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            # @dataclass(slots=True) replaces a class: the first one lingers as a subclass.
            module = sys.modules.get(sub.__module__)
            if getattr(module, sub.__qualname__, None) is sub:
                found.setdefault(sub.type, sub)
            pending.append(sub)
    return found


_CLASSES: dict[str, type[Event]] = {}
Converter = typing.Callable[[Any], Any]
# Per event class: (field, converter or None for a JSON value kept as it is), built
# once from the type hints. Other nodes' events are all decoded here (every node reads
# them), so looking the hints up per field and value cost a node of two workers a
# tenth of its CPU.
_FIELDS: dict[type[Event], tuple[tuple[str, Converter | None], ...]] = {}


def decode(
    type_: str, charge_point_id: str, occurred_at: datetime, event_id: uuid.UUID, payload: Any
) -> Event | None:
    """The event a stored row describes, or None for a type no class is known for."""
    cls = _CLASSES.get(type_)
    if cls is None:
        _CLASSES.update(event_classes())
        cls = _CLASSES.get(type_)
        if cls is None:
            return None
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls)
        fields = _FIELDS[cls] = tuple(
            (f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)
        )
    values: dict[str, Any] = {}
    for name, convert in fields:
        if name in payload:
            value = payload[name]
            values[name] = value if convert is None or value is None else convert(value)
    return cls(
        charge_point_id=charge_point_id, occurred_at=occurred_at, event_id=event_id, **values
    )


def parse(type_: str, text: str) -> Any:
    """The JSON payload of a row of type ``type_``, as ``json.loads`` would read it.

    orjson reads a meter value in less than half of json's time (the lease holder
    reads every meter value the other workers stored), but reads an integer beyond
    64 bits as a float and refuses NaN and lone surrogates (which json, the fallback
    writer of ``Event.payload_json``, writes). So orjson is used for the classes whose
    fields are all plain (no dict or list of JSON values an integer could hide in),
    and its result is checked: a float in an integer field, or a text it refuses,
    is read again with json.
    """
    plan = _PARSE_PLANS.get(type_)
    if plan is None:
        cls = _CLASSES.get(type_)
        if cls is None:
            _CLASSES.update(event_classes())
            cls = _CLASSES.get(type_)
        plan = _PARSE_PLANS[type_] = _parse_plan(cls)
    if plan is _JSON_ONLY:
        return json.loads(text)
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    if isinstance(values, dict):
        for name in plan:
            if values.get(name).__class__ is float:  # an integer beyond 64 bits
                return json.loads(text)
    return values


_JSON_ONLY: tuple[str, ...] = ("*",)
_PARSE_PLANS: dict[str, tuple[str, ...]] = {}  # type -> its integer fields, or _JSON_ONLY
_PLAIN_HINTS = (str, bool, float, datetime, uuid.UUID, MeterSample)


def _parse_plan(cls: type[Event] | None) -> tuple[str, ...]:
    """The integer fields to check after orjson; _JSON_ONLY if a field may hide an integer."""
    if cls is None:
        return _JSON_ONLY
    hints = typing.get_type_hints(cls)
    integers: list[str] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(options) != 1:
                return _JSON_ONLY
            hint = options[0]
        if typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            if args[0] not in _PLAIN_HINTS or args[0] in (float, bool):
                return _JSON_ONLY  # tuple[int, ...]: an element could be one; floats: rare
            continue
        if hint is int:
            integers.append(f.name)
        elif not (hint in _PLAIN_HINTS or (isinstance(hint, type) and issubclass(hint, enum.Enum))):
            return _JSON_ONLY
    return tuple(integers)


def _convert(hint: Any, value: Any) -> Any:
    """A JSON value back into the type ``hint`` names (the inverse of Event.payload)."""
    if value is None:
        return None
    convert = _converter(hint)
    return value if convert is None else convert(value)


def _converter(hint: Any) -> Converter | None:
    """What turns a JSON value (not None) into the type ``hint`` names; None: as it is."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(options[0]) if len(options) == 1 else None
    if origin is tuple:
        inner = _converter(typing.get_args(hint)[0])
        if inner is _meter_sample:
            return _meter_samples
        if inner is None:
            return lambda value: tuple(_iterable(value))
        return lambda value: tuple(None if v is None else inner(v) for v in _iterable(value))
    if hint is datetime:
        return datetime.fromisoformat
    if hint is uuid.UUID:
        return uuid.UUID
    if hint is MeterSample:
        return _meter_sample
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if hint is float:
        return _float
    return None


def _meter_sample(value: dict[str, Any]) -> MeterSample:
    # Without copying the dict; keys the class does not have are ignored. Built by
    # csms.meter.new_sample (slots set directly: eight samples a meter value, every one
    # of the other workers' on the lease holder: docs/profiling.md, "Meter values on
    # the lease holder").
    get = value.get
    reading = value["value"]
    return new_sample(
        _timestamp(value["sampled_at"]),
        value["measurand"],
        float(reading) if isinstance(reading, int) else reading,
        get("unit"),
        get("phase"),
        get("context"),
        get("location"),
    )


def _meter_samples(value: Any) -> tuple[MeterSample | None, ...]:
    return tuple([None if v is None else _meter_sample(v) for v in _iterable(value)])


@functools.lru_cache(maxsize=64)
def _timestamp(text: str) -> datetime:
    """A sample's time (one message's samples share it: parsed once)."""
    return datetime.fromisoformat(text)


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value


def _iterable(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple) else (value,)
