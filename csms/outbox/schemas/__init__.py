"""JSON Schemas (draft 2020-12) of every message the CSMS publishes.

``envelope.v1.json`` is the envelope all messages share; ``<type>.v<N>.json``
adds the payload of one event type at one schema version. Consumers (and the
tests) validate with :func:`validate`; the files are the documentation.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


@functools.cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry()
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry


def schema_ids() -> list[str]:
    """Every schema shipped, e.g. ``session_ended.v1.json``."""
    return sorted(str(uri) for uri in _registry())


@functools.cache
def validator(event_type: str, version: int = 1) -> Draft202012Validator:
    schema_id = f"{event_type}.v{version}.json"
    schema = _registry().contents(schema_id)
    return Draft202012Validator(schema, registry=_registry())


def validate(envelope: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless the envelope matches its type's schema."""
    validator(str(envelope["type"]), int(envelope["schema_version"])).validate(envelope)
