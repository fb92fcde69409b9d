"""Fast JSON-schema validation of OCPP payloads, with jsonschema as the authority.

The ocpp library validates with ``jsonschema`` (about 300 µs for a 1.6
MeterValues with 8 samples, most of a message's CPU cost). Here each schema
the library ships is compiled twice more, in three tiers:

1. ``jsonschema-rs`` (Rust; 2-4 µs for a 1.6 MeterValues or a 2.0.1
   TransactionEvent with 8 samples) says only "valid": its yes is enough,
   and the schema's defaults are then filled in as tier 2 would (below);
2. anything else -- its no, a value it cannot read (a lone surrogate), a
   schema it is not trusted with -- goes to ``fastjsonschema`` (20-80 µs),
   whose yes is enough too;
3. a payload tier 2 rejects is checked again with ``jsonschema``, whose verdict
   wins and whose error names the keyword that :mod:`csms.rpc_errors` maps to an
   OCPP error code.

So what a charger is told never depends on the fast tiers: a payload they
refuse is decided by the reference, and a test checks that they accept nothing
the reference refuses (tests/csms/test_validation_agreement.py); invalid
payloads just cost all three.

Formats (``date-time``) are not checked here, as ``jsonschema``'s Draft 4
validator does not check them either; timestamps are parsed (and refused
with PropertyConstraintViolation) where they are used. The compiled
validators fill in schema defaults (e.g. 2.0.1 ``offline: false``), which are
the values the spec gives an absent field anyway; after a tier-1 yes the same
defaults are filled in by :mod:`csms.schema_defaults` (fastjsonschema's rule:
a property's own ``default``, not one behind a ``$ref``).

One reading of the schemas: the reference is the library's ``Draft4Validator``
for both versions (the 2.0.1 files say draft-06), so each schema is compiled as
draft-04 too. The drafts differ where it shows: draft-06 counts ``1.0`` and
``-0.0`` as integers, draft-04 does not; compiled as draft-06, a payload the
reference refuses would have passed unchecked. A test checks that the two agree
on a corpus of edge cases (tests/csms/test_validation_agreement.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema_rs
from jsonschema.exceptions import ValidationError, best_match
from ocpp.messages import get_validator

from csms.schema_defaults import Filler, filler

CALL, CALLRESULT = 2, 3
DRAFT_04 = "http://json-schema.org/draft-04/schema#"


# The keywords the OCPP schemas use that tier 1 is trusted with (checked against the
# reference by tests/csms/test_validation_agreement.py). A schema with any other
# keyword (``multipleOf``: float rounding) is left to tier 2.
_FAST_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$ref", "id", "definitions", "comment", "description", "title",
        "javaType", "type", "properties", "required", "additionalProperties", "enum",
        "maxLength", "items", "minItems", "maxItems", "additionalItems", "minimum",
        "maximum", "format", "default",
    }
)  # fmt: skip


def _keywords(schema: Any, found: set[str]) -> set[str]:
    if isinstance(schema, dict):
        for keyword, value in schema.items():
            found.add(keyword)
            if keyword in ("properties", "definitions") and isinstance(value, dict):
                for child in value.values():
                    _keywords(child, found)
            else:
                _keywords(value, found)
    elif isinstance(schema, list):
        for child in schema:
            _keywords(child, found)
    return found


@cache
def _fast(message_type: int, action: str, ocpp_version: str) -> Callable[[Any], bool] | None:
    """Tier 1's check for a schema (None: not trusted with it), formats unchecked as above."""
    if (message_type, action, ocpp_version) in _DECIMAL_SCHEMAS:
        return None
    schema = dict(get_validator(message_type, action, ocpp_version).schema)
    if not _keywords(schema, set()) <= _FAST_KEYWORDS:
        return None
    schema["$schema"] = DRAFT_04
    is_valid: Callable[[Any], bool] = jsonschema_rs.Draft4Validator(
        schema, validate_formats=False
    ).is_valid
    return is_valid


@cache
def _defaults(message_type: int, action: str, ocpp_version: str) -> Filler | None:
    schema = get_validator(message_type, action, ocpp_version).schema
    return filler(schema)


def _fast_accepts(message_type: int, action: str, ocpp_version: str, payload: Any) -> bool:
    """Tier 1's yes; False for its no and for anything it cannot read."""
    is_valid = _fast(message_type, action, ocpp_version)
    if is_valid is None:
        return False
    try:
        return is_valid(payload)
    except Exception:  # a value Rust cannot hold (a lone surrogate): tier 2 decides
        return False


@cache
def _compiled(
    message_type: int, action: str, ocpp_version: str, fill_defaults: bool = True
) -> Callable[[Any], Any]:
    schema = dict(get_validator(message_type, action, ocpp_version).schema)
    schema["$schema"] = DRAFT_04  # the reference validator's reading, whatever the file says
    validate: Callable[[Any], Any] = fastjsonschema.compile(
        schema, use_formats=False, use_default=fill_defaults
    )
    return validate


def warm(ocpp_version: str, actions: Iterable[str]) -> int:
    """Compile the validators of ``actions`` (CALL and CALLRESULT) now; how many compiled.

    Compiling one takes up to ~30 ms; done at a message's first use, each of the
    dozen actions a fleet sends held the loop that long once after every start
    (a restart's reconnect storm included). Meant for a thread at the first
    connection of a version: the compiling thread gives the loop the GIL every
    switch interval instead of holding it for a whole schema. An action without
    a schema (or one that does not compile) is skipped: its first message says so,
    and so are the schemas the library reads with decimals (see below).
    """
    compiled = 0
    for action in actions:
        for message_type in (CALL, CALLRESULT):
            if (message_type, action, ocpp_version) in _DECIMAL_SCHEMAS:
                continue
            try:
                _compiled(message_type, action, ocpp_version)
                _fast(message_type, action, ocpp_version)
                _defaults(message_type, action, ocpp_version)
            except Exception:  # reported where a message of it is validated
                continue
            compiled += 1
    return compiled


# The schemas the ocpp library reads with decimal numbers (their ``multipleOf: 0.1``
# fails on binary floats). Its cache of validators is keyed by schema name alone, so
# reading one of them here with floats first would leave the library (and any
# in-process charger simulator) a float schema for decimal payloads: a TypeError.
_DECIMAL_SCHEMAS = frozenset(
    {
        (CALL, "SetChargingProfile", "1.6"),
        (CALL, "RemoteStartTransaction", "1.6"),
        (CALLRESULT, "GetCompositeSchedule", "1.6"),
    }
)


def accepts(message_type: int, action: str, ocpp_version: str, payload: Any) -> bool:
    """Whether the compiled validator accepts ``payload`` as it is (no defaults filled in).

    True means valid. False means "ask the reference": the ``ocpp`` library's own
    validation (always, for the schemas it reads with decimal numbers). For the
    CSMS's own calls and the chargers' answers to them.
    """
    if (message_type, action, ocpp_version) in _DECIMAL_SCHEMAS:
        return False
    if _fast_accepts(message_type, action, ocpp_version, payload):
        return True
    try:
        _compiled(message_type, action, ocpp_version, False)(payload)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def first_error(
    message_type: int, action: str, ocpp_version: str, payload: Any
) -> ValidationError | None:
    """The most relevant schema violation of ``payload``, or None if it is valid.

    A valid payload gets the schema's defaults filled in (see above).
    Raises OSError if the version has no schema for ``action``.
    """
    if _fast_accepts(message_type, action, ocpp_version, payload):
        fill = _defaults(message_type, action, ocpp_version)
        if fill is not None:
            fill(payload)
        return None
    try:
        _compiled(message_type, action, ocpp_version)(payload)
        return None
    except fastjsonschema.JsonSchemaException:
        validator = get_validator(message_type, action, ocpp_version)
        error: ValidationError | None = best_match(validator.iter_errors(payload))
        return error
