"""Turning a stored event row back into its :class:`~csms.events.Event` subclass.

Fields come from the JSON payload, the envelope (charger, time, id) from the
row's columns. Each class's converters are built once from its type hints
(looking them up per field and value cost a node of two workers a tenth of its
CPU, docs/profiling.md).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import types
import typing
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from csms.events import Event, MeterSample


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
    # Positional, without copying the dict: a meter value's eight samples were half of
    # the cost of decoding another worker's row on the lease holder (docs/profiling.md,
    # "Two workers, one cost"). Keys the class does not have are ignored.
    get = value.get
    reading = value["value"]
    return MeterSample(
        _timestamp(value["sampled_at"]),
        value["measurand"],
        float(reading) if isinstance(reading, int) else reading,
        get("unit"),
        get("phase"),
        get("context"),
        get("location"),
    )


@functools.lru_cache(maxsize=64)
def _timestamp(text: str) -> datetime:
    """A sample's time (one message's samples share it: parsed once)."""
    return datetime.fromisoformat(text)


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value


def _iterable(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple) else (value,)
