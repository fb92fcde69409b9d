"""OCPP-J frames: what the connection reads from them and writes into them.

Helpers of :mod:`csms.connection`: the exceptions a CSMS call ends with
when the charger's answer is an error or is not valid, the message id of a
frame, the camelCase -> snake_case conversion of payloads, the answers with
no field set (built and checked once per action), and the schema check of
the CSMS's own calls and their answers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
from typing import Any

import orjson
from ocpp.charge_point import camel_to_snake_case
from ocpp.messages import Call, CallResult, validate_payload

from csms.poison import plain
from csms.validation import CALLRESULT, accepts, first_error

MAX_MESSAGE_ID_LENGTH = 36
FRAME_HEAD = re.compile(r'\s*\[\s*(\d+)\s*,\s*"([^"\\]{1,36})"')


class CallErrorReceived(Exception):
    """The charger answered a CSMS call with a CALLERROR."""

    def __init__(self, code: str, description: str, details: Any, raw: str = "") -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details
        self.raw = raw  # the frame as it arrived, for the audit trail


class InvalidAnswer(Exception):
    """The charger's answer to a CSMS call is not valid OCPP (schema, NaN, NUL, nesting).

    ``raw`` is the frame as it arrived (a literal NUL spelled ``\\u0000``), kept for
    the audit trail.
    """

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


def read_frame(text: str) -> tuple[Any, bool]:
    """The frame ``json.loads(text)`` reads, and whether it is :func:`csms.poison.plain`.

    Read by orjson (half of json's time) where that gives exactly json's result:
    orjson refuses what json reads beyond RFC 8259 (``NaN``, ``Infinity``, ``1e400``,
    lone surrogates, nesting beyond 1,024) and those go to json; it reads an integer
    beyond 64 bits as a float, which the plain test refuses (so does nesting json
    may not reach, beyond 32 levels): such a frame is read again by json. Floats,
    strings and duplicate keys read the same (tests/csms/test_frame_json.py).
    Raises what ``json.loads`` raises for a text that is not JSON.
    """
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text), False
    if type(frame) is list and plain(frame):
        return frame, True
    return json.loads(text), False


def storable_raw(text: str, limit: int = 65536) -> str:
    return text[:limit].replace("\x00", "\\u0000")


@functools.cache
def takes_call_unique_id(handler: Any) -> bool:
    """Whether a handler asks for the message id (read once per handler, not per message)."""
    return "call_unique_id" in inspect.signature(handler).parameters


_ANSWER_FIELDS: dict[type, tuple[str, ...]] = {}


def unset(response: Any) -> bool:
    """Whether an answer dataclass has every field None: its payload is ``{}``."""
    kind = type(response)
    names = _ANSWER_FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(response):
            return False
        names = _ANSWER_FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return all(getattr(response, name) is None for name in names)


@functools.cache
def empty_answer(action: str, ocpp_version: str, validate: bool) -> str | None:
    """The JSON of an answer with no field set, checked once (None: the schema refuses it).

    Checked like any answer, schema defaults filled in included; the same every
    time, so the check and the encoding are done once per action instead of per
    message (MeterValues, TransactionEvent Updated, StatusNotification...).
    """
    payload: dict[str, Any] = {}
    if validate and first_error(CALLRESULT, action, ocpp_version, payload) is not None:
        return None  # the general path logs and refuses it
    return json.dumps(payload, separators=(",", ":"))


# Keys converted so far. Bounded: payload keys come from the schemas' small set,
# but a 2.0.1 customData object may carry any key a charger makes up.
_SNAKE_KEYS: dict[str, str] = {}
_SNAKE_KEYS_MAX = 4096
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _snake_case_key(key: str) -> str:
    converted = _SNAKE_KEYS.get(key)
    if converted is None:
        converted = next(iter(camel_to_snake_case({key: None})))
        if len(_SNAKE_KEYS) < _SNAKE_KEYS_MAX:
            _SNAKE_KEYS[key] = converted
    return converted


def snake_case_keys(data: Any) -> Any:
    """The ocpp library's camelCase -> snake_case conversion, with each key converted once.

    The library runs several regular expressions per key per message (8 % of
    the CPU in the ingest benchmark). Scalars are not passed to a call of their
    own: a meter value's payload is mostly scalars (a third of the cost went there).
    A dict of scalars whose keys are snake_case already is passed on as it is, not
    copied: the result may share such dicts with ``data``.
    """
    kind = type(data)
    if kind is dict or (kind not in _SCALARS and isinstance(data, dict)):
        return _snake_dict(data)
    if kind is list or (kind not in _SCALARS and isinstance(data, list)):
        return _snake_list(data)
    return data


def _snake_dict(data: dict[str, Any]) -> dict[str, Any]:
    keys = _SNAKE_KEYS
    for key, value in data.items():
        if keys.get(key) != key or type(value) not in _SCALARS:
            break
    else:  # snake_case already and no nested value (a 1.6 sampled value): itself, not a copy
        return data
    converted: dict[str, Any] = {}
    for key, value in data.items():
        kind = type(value)
        if kind is dict:
            value = _snake_dict(value)
        elif kind is list:
            value = _snake_list(value)
        elif kind not in _SCALARS:
            value = snake_case_keys(value)
        converted[keys.get(key) or _snake_case_key(key)] = value
    return converted


def _snake_list(data: list[Any]) -> list[Any]:
    converted: list[Any] = []
    for value in data:
        kind = type(value)
        if kind is dict:
            value = _snake_dict(value)
        elif kind is list:
            value = _snake_list(value)
        elif kind not in _SCALARS:
            value = snake_case_keys(value)
        converted.append(value)
    return converted


async def check_own(message: Call | CallResult, ocpp_version: str) -> None:
    """A CSMS call, or the charger's answer to one, against its schema; raises OCPPError.

    The compiled validator's yes is enough; anything else is decided by the
    ``ocpp`` library's validation, as before (:func:`csms.validation.accepts`).
    """
    if not accepts(message.message_type_id, message.action, ocpp_version, message.payload):
        await validate_payload(message, ocpp_version)


def readable_id(frame: list[Any]) -> str:
    """The frame's message id if it is a valid one, else "-1" as the spec asks."""
    if len(frame) > 1 and isinstance(frame[1], str) and 0 < len(frame[1]) <= MAX_MESSAGE_ID_LENGTH:
        return frame[1]
    return "-1"
