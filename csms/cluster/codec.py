"""The ``ocpp`` library's call and call-result dataclasses as JSON, and back.

A forwarded command crosses nodes as ``{"module", "class", "fields"}``:
``fields`` is :func:`dataclasses.asdict` of the instance (enums by value,
nested dataclasses as dicts, which the sending node serializes to exactly the
same frame). Only the four message modules of the library are accepted when
rebuilding, so a row in the database cannot name an arbitrary class.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
from decimal import Decimal
from typing import Any

MESSAGE_MODULES = frozenset(
    {"ocpp.v16.call", "ocpp.v16.call_result", "ocpp.v201.call", "ocpp.v201.call_result"}
)


class NotAMessage(ValueError):
    """The value is not (or does not describe) an ocpp call or call-result dataclass."""


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Decimal):  # the library reads some 1.6 numbers as Decimal
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def encode(message: Any) -> dict[str, Any]:
    """``message`` (an ocpp call or call result) as a JSON-ready dict."""
    cls = type(message)
    if (
        not dataclasses.is_dataclass(message)
        or isinstance(message, type)
        or cls.__module__ not in MESSAGE_MODULES
    ):
        raise NotAMessage(f"{cls.__module__}.{cls.__name__} is not an ocpp message")
    return {
        "module": cls.__module__,
        "class": cls.__name__,
        "fields": _plain(dataclasses.asdict(message)),
    }


def decode(data: dict[str, Any]) -> Any:
    """Rebuild the dataclass :func:`encode` described."""
    module_name, class_name = data.get("module"), data.get("class")
    if module_name not in MESSAGE_MODULES or not isinstance(class_name, str):
        raise NotAMessage(f"{module_name}.{class_name} is not an ocpp message")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if cls is None or not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise NotAMessage(f"{module_name} has no message {class_name!r}")
    fields = data.get("fields")
    if not isinstance(fields, dict):
        raise NotAMessage("fields must be an object")
    return cls(**fields)


def dumps(message: Any) -> str:
    return json.dumps(encode(message), separators=(",", ":"))


def loads(text: str) -> Any:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise NotAMessage("a message is a JSON object")
    return decode(data)
