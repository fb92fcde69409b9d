"""Valid payloads of an OCPP JSON schema, as a hypothesis strategy (for tests).

Covers the keywords the OCPP 1.6 and 2.0.1 schemas use (type, properties,
required, additionalProperties, enum, $ref to definitions, items, minItems,
maxItems, maxLength, minimum, maximum, format date-time); each optional
property is present or absent at random, so defaults get filled or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

_TIMESTAMPS = st.datetimes().map(lambda moment: moment.isoformat() + "Z")
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def payloads(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Payloads ``schema`` accepts (draft-04 reading)."""
    definitions: Mapping[str, Any] = schema.get("definitions", {})

    def strategy(node: Mapping[str, Any], depth: int) -> st.SearchStrategy[Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].removeprefix("#/definitions/")]
        if "enum" in node:
            return st.sampled_from(node["enum"])
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            return objects(node, depth)
        if kind == "array":
            items = node.get("items", {})
            return st.lists(
                strategy(items, depth + 1) if items else st.none(),
                min_size=node.get("minItems", 0),
                max_size=min(node.get("maxItems", 3), max(3, node.get("minItems", 0))),
            )
        if kind == "string":
            if node.get("format") == "date-time":
                return _TIMESTAMPS
            return _TEXT.map(lambda text: text[: node.get("maxLength", 40)])
        if kind == "integer":
            return st.integers(node.get("minimum", -(2**40)), node.get("maximum", 2**40))
        if kind == "number":
            low, high = node.get("minimum"), node.get("maximum")
            return st.one_of(
                st.integers(
                    int(low) if low is not None else -(2**40), 2**40 if high is None else int(high)
                ),
                st.floats(low, high, allow_nan=False, allow_infinity=False),
            )
        if kind == "boolean":
            return st.booleans()
        return st.none()

    def objects(node: Mapping[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
        properties: Mapping[str, Any] = node.get("properties", {})
        required = set(node.get("required", []))
        fields = {
            name: strategy(child, depth + 1)
            for name, child in properties.items()
            if name in required or depth < 6
        }
        return st.fixed_dictionaries(
            {name: value for name, value in fields.items() if name in required},
            optional={name: value for name, value in fields.items() if name not in required},
        )

    return strategy(schema, 0)
