"""OCPP-J RPC error codes, spelled as each protocol version's table spells them.

OCPP-J 1.6 (section 4.2.3) and 2.0.1 (Part 4, section 4.3) list almost the
same codes with different spellings: 1.6 keeps the misspelt
``FormationViolation``; both keep ``OccurenceConstraintViolation`` (the OCPP
1.6 errata and the 2.0.1 schemas leave it unfixed; 2.1 fixed it). 2.0.1 adds
``RpcFrameworkError`` and ``MessageTypeNotSupported``, which 1.6 lacks.

The ``ocpp`` library answers an action nobody handles with ``NotSupported``
and an unknown one with ``NotImplemented`` -- the reverse of both tables
("NotImplemented: Requested Action is not known by receiver"; "NotSupported:
Requested Action is recognized but not supported"). We follow the spec.
"""

from __future__ import annotations

import enum
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import OCPPError

from csms.events import Protocol


class ErrorCode(enum.Enum):
    """A version-neutral error; :func:`wire_code` gives the string a charger expects."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMAT_VIOLATION = "FormatViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"  # 2.0.1 only
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"  # 2.0.1 only


_V16_SPELLING = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    # 1.6 has no frame-level code; a frame that does not conform to the PDU
    # structure is what its FormationViolation describes.
    ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
}
_V201_SPELLING = {
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
}

# Every spelling either version (or the ocpp library) uses, back to the code.
_FROM_WIRE: dict[str, ErrorCode] = {code.value: code for code in ErrorCode} | {
    "FormationViolation": ErrorCode.FORMAT_VIOLATION,
    "OccurenceConstraintViolation": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
}


def wire_code(code: ErrorCode, protocol: Protocol) -> str:
    table = _V16_SPELLING if protocol is Protocol.V16 else _V201_SPELLING
    return table.get(code, code.value)


def from_wire(code: str) -> ErrorCode:
    """Read a code as either version spells it; unknown codes count as GenericError."""
    return _FROM_WIRE.get(code, ErrorCode.GENERIC_ERROR)


class RpcError(Exception):
    """An error to answer a CALL with; ``description`` is for people, at most 255 chars."""

    def __init__(
        self, code: ErrorCode, description: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description[:255]
        self.details = details or {}

    @classmethod
    def from_ocpp_error(cls, error: OCPPError) -> RpcError:
        cause = error.details.get("cause") if isinstance(error.details, dict) else None
        return cls(from_wire(error.code), str(cause or error.description))


# JSON-schema keyword that failed -> the error whose table text describes it.
_SCHEMA_KEYWORD_CODES = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,  # string[N] is part of the type
    "minLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorCode.FORMAT_VIOLATION,
}


def schema_error(error: SchemaValidationError, protocol: Protocol) -> RpcError:
    """Map a payload's schema violation to the error its version's table names for it."""
    keyword = str(error.validator)
    if keyword == "required":
        # 1.6: "ProtocolError: Payload for Action is incomplete". 2.0.1 redefined
        # ProtocolError as a PDU-structure error; a missing field violates the
        # field's occurrence (minOccurs 1).
        code = (
            ErrorCode.PROTOCOL_ERROR
            if protocol is Protocol.V16
            else ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
        )
    else:
        code = _SCHEMA_KEYWORD_CODES.get(keyword, ErrorCode.FORMAT_VIOLATION)
    path = "/".join(str(p) for p in error.absolute_path)
    where = f" at '{path}'" if path else ""
    return RpcError(code, f"{error.message}{where}", {"keyword": keyword, "path": path})
