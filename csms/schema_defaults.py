"""A JSON schema's defaults filled into a payload already known to be valid.

:mod:`csms.validation`'s compiled validator (``fastjsonschema`` with
``use_default``) fills in, while it validates, every absent property whose own
definition in ``properties`` carries a ``default`` -- ``offline: false`` of a
2.0.1 TransactionEvent, ``unit: "Wh"`` and ``multiplier: 0`` of each sample's
unitOfMeasure -- in the order of the schema's ``properties``, at the end of the
object. A default behind a ``$ref`` is not filled (the generated code looks
only at the property's own dict), nor one under ``additionalProperties``.

When the faster check (``jsonschema-rs``) has accepted a payload, this module
does the same filling without validating again: a plan per schema, built
once, that walks only the objects and arrays that lead to a default. Same
payloads out, key order included (tests/csms/test_schema_defaults.py
compares the two on every schema with a default).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

Filler = Callable[[Any], None]


def filler(schema: Mapping[str, Any]) -> Filler | None:
    """The filler of ``schema``'s defaults, or None if it has none to fill."""
    definitions: Mapping[str, Any] = schema.get("definitions", {})
    building: dict[str, Filler | None] = {}

    def resolve(node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            reference = node["$ref"]
            if not isinstance(reference, str) or not reference.startswith("#/definitions/"):
                return None
            node = definitions.get(reference.removeprefix("#/definitions/"))
            seen += 1
        return node

    def build(node: Any) -> Filler | None:
        reference = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(reference, str):
            if reference not in building:  # a definition's filler is built once
                building[reference] = None  # (and a recursive one stops here)
                building[reference] = build(resolve(node))
            return building[reference]
        if not isinstance(node, dict):
            return None
        properties = node.get("properties")
        if isinstance(properties, dict):
            return _object_filler(properties, build)
        items = node.get("items")
        if isinstance(items, dict):
            item_filler = build(items)
            if item_filler is not None:
                return _array_filler(item_filler)
        return None

    return build(schema)


def _object_filler(
    properties: Mapping[str, Any], build: Callable[[Any], Filler | None]
) -> Filler | None:
    # fastjsonschema visits the properties in order: a present one is validated
    # (its nested defaults filled), an absent one gets its default if it has one.
    plan: list[tuple[str, bool, Any, Filler | None]] = []
    for name, definition in properties.items():
        has_default = isinstance(definition, dict) and "default" in definition
        child = build(definition)
        if has_default or child is not None:
            plan.append((name, has_default, definition.get("default"), child))
    if not plan:
        return None

    def fill(value: Any) -> None:
        if type(value) is not dict:
            return
        for name, has_default, default, child in plan:
            if name in value:
                if child is not None:
                    child(value[name])
            elif has_default:
                value[name] = (
                    copy.deepcopy(default) if isinstance(default, dict | list) else default
                )

    return fill


def _array_filler(item_filler: Filler) -> Filler:
    def fill(value: Any) -> None:
        if type(value) is list:
            for item in value:
                item_filler(item)

    return fill
