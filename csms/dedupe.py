"""What makes a charger's message a resend, and the event ids that follow from it.

A charger that got no answer (lost socket, CSMS crash) sends the same message
again, after a reconnect often with a new message id. Each message a handler
handles gets a *dedupe key* (:func:`message_key`), and every event created while
handling it takes its id from that key (uuid5 of charger, key and the event's
position in the message). A resend therefore makes the same event ids; the
events table's unique ``event_id`` turns the second copy into a no-op, the
charger is answered again from what is stored, and a Kafka consumer that keys
on ``event_id`` sees one event even if the outbox published one twice.

What identifies a duplicate (docs/reliability.md has the table):

* 2.0.1 TransactionEvent: the transaction id and ``seqNo``, which the spec
  makes unique per transaction -- across reconnects, whatever the message id;
* MeterValues (both versions): the sample set -- connector, transaction and
  every sampled value with its timestamp -- across reconnects;
* 1.6 StartTransaction: connector, idTag, timestamp and meterStart;
* 1.6 StopTransaction: the transaction id (a transaction ends once);
* any other message that carries a timestamp: message id and payload, across
  reconnects; one without a timestamp (1.6 StatusNotification may omit it,
  BootNotification has none): message id and payload on the same connection
  only, since a charger that restarts its message counter after a reboot may
  repeat both for a new fact.

Events created outside a charger's message (connect, disconnect, API actions)
keep random ids.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

_NAMESPACE = uuid.UUID("6f1c1b9e-6a57-4d1c-9a53-0c8a5e0c0d15")


@dataclass(slots=True)
class _MessageScope:
    charge_point_id: str
    key: str
    events: int = field(default=0)


_current: contextvars.ContextVar[_MessageScope | None] = contextvars.ContextVar(
    "csms_message_scope", default=None
)


# orjson writes what json would not: other types (refused here, json decides), and for a
# non-finite float ``null`` where json writes NaN.
_ORJSON_CANONICAL = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical_json(value: Any) -> bytes:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8.

    The bytes a message's digest is taken of: they must not change, or a message
    resent across an upgrade would get new event ids. orjson writes them in a
    quarter of json's time and byte for byte the same for JSON data (keys sorted by
    code point, the same escapes, the same shortest float repr) except: a float
    below 1e-4 in magnitude (json ``1e-05``, orjson ``0.00001`` or ``1e-7``), a
    non-finite float (json ``NaN``, orjson ``null``), an integer beyond 64 bits or a
    lone surrogate (orjson refuses). Any ``null``, ``e-`` or ``0.0000`` in orjson's
    bytes (so any of those floats, and the odd string that spells one) sends the
    value to json; tests/csms/test_frame_json.py compares the two.
    """
    try:
        data = orjson.dumps(value, option=_ORJSON_CANONICAL)
    except TypeError:
        pass
    else:
        if b"null" not in data and b"e-" not in data and b"0.0000" not in data:
            return data
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()[:32]


def message_key(action: str, message_id: str, payload: dict[str, Any], connection: str) -> str:
    """The dedupe key of one CALL (payload in the charger's camelCase)."""
    info = payload.get("transactionInfo")
    if action == "TransactionEvent" and isinstance(info, dict) and "seqNo" in payload:
        return f"TransactionEvent|{info.get('transactionId')}|{payload['seqNo']}"
    if action == "MeterValues":
        return f"MeterValues|{_digest(payload)}"
    if action == "StartTransaction":
        return f"StartTransaction|{_digest(payload)}"
    if action == "StopTransaction" and "transactionId" in payload:
        return f"StopTransaction|{payload['transactionId']}"
    scope = "" if "timestamp" in payload else connection
    return f"{action}|{scope}|{message_id}|{_digest(payload)}"


class _Handling:
    """A plain context manager: a generator-based one costs a generator per message."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: _MessageScope) -> None:
        self._scope = scope

    def __enter__(self) -> None:
        self._token = _current.set(self._scope)

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def handling(charge_point_id: str, key: str) -> _Handling:
    """Inside ``with handling(...)`` events take their ids from (charger, key, position)."""
    return _Handling(_MessageScope(charge_point_id, key))


def next_event_id() -> uuid.UUID:
    """The id of a new event: derived inside :func:`handling`, random outside it."""
    scope = _current.get()
    if scope is None:
        return uuid.uuid4()
    index = scope.events
    scope.events += 1
    return event_uuid(f"{scope.charge_point_id}\x1f{scope.key}\x1f{index}")


_NAMESPACE_BYTES = _NAMESPACE.bytes
_VERSION_BITS = (0xF000 << 64) | (0xC000 << 48)  # version (4 bits), variant (2 bits)
_VERSION_5 = (5 << 76) | (0x8000 << 48)  # version 5, RFC 4122 variant


def event_uuid(name: str) -> uuid.UUID:
    """``uuid.uuid5(_NAMESPACE, name)``, built from its integer (half the CPU of uuid5's bytes).

    A message id may hold a lone surrogate, which strict UTF-8 refuses: it is
    written as U+FFFD, as it always was.
    """
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        data = name.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
    digest = hashlib.sha1(_NAMESPACE_BYTES + data, usedforsecurity=False).digest()
    return uuid.UUID(int=int.from_bytes(digest[:16], "big") & ~_VERSION_BITS | _VERSION_5)
