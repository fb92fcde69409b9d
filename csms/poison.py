"""Values a schema allows but the database or arithmetic cannot hold, screened at the door.

JSON Schema lets a charger send things no column can keep: a NUL character in a
string (Postgres ``text`` and ``jsonb`` refuse it), ``NaN`` / ``Infinity``
literals or ``1e400`` (which Python reads as infinity; ``jsonb`` and energy
sums cannot hold them), integers beyond 64 bits, and nesting deep enough to
exhaust recursion. :func:`screen` runs on every CALL payload before schema
validation:

* a NUL or a lone surrogate in a string is replaced by U+FFFD (the Unicode
  replacement character),
  so a fault report with a NUL in its ``info`` is stored -- visibly altered --
  instead of lost; the replacement is logged and counted;
* a non-finite number or an integer beyond int64 is refused with
  PropertyConstraintViolation naming where it is;
* nesting deeper than :data:`MAX_DEPTH` (no OCPP message needs more than about
  eight levels) is refused with FormatViolation.
"""

from __future__ import annotations

import math
import re
from typing import Any

from csms.rpc_errors import ErrorCode, RpcError

MAX_DEPTH = 32
_INT64 = 2**63
NUL = "\x00"
REPLACEMENT = "\ufffd"
# A lone surrogate (``"\\ud800"`` in JSON) is no character: UTF-8, and so
# Postgres, cannot hold it. json.loads joins valid pairs, so any left is lone.
_UNHOLDABLE = re.compile("[\x00\ud800-\udfff]")
# JSON escapes that can spell an unholdable character; a text without them has none.
_WALK_MARKERS = ("\\u0000", "\\ud", "\\uD")


def plain(value: Any, depth: int = 0) -> bool:
    """True if nothing in ``value`` needs a look: the fast check of every message.

    Stricter than :func:`screen` in one place: a float of 2**63 or more (in
    magnitude) needs a look too. orjson reads an integer literal beyond 64 bits
    as such a float (:func:`csms.rpc_frames.read_frame`), so a frame that is
    plain by this test was read exactly as ``json.loads`` reads it; a real
    float that large (no meter reads one) only takes the slow road.
    """
    if depth >= MAX_DEPTH:
        return False
    items = value.values() if type(value) is dict else value
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict or kind is list:
            if not plain(item, depth + 1):
                return False
        elif kind is float:
            if not -_INT64 < item < _INT64:  # NaN and infinities fail too
                return False
        elif kind is int and not -_INT64 <= item < _INT64:
            return False
    return True


def screen(payload: Any, text: str | None = None, checked: bool = False) -> tuple[Any, int]:
    """``payload`` with NULs replaced, and how many strings were altered; raises RpcError.

    ``text`` is the JSON the payload was read from: JSON writes a NUL as ``\\u0000``,
    so a text without one has none and needs only the fast check. ``checked``: the
    frame the payload is part of was found :func:`plain` already (while it was read).
    """
    container = type(payload) is dict or type(payload) is list
    # Most frames have no escape at all: one scan for "\u" instead of three.
    quick = text is not None and (
        "\\u" not in text or not any(marker in text for marker in _WALK_MARKERS)
    )
    if quick and container and (checked or plain(payload)):
        return payload, 0
    replaced = 0

    def walk(value: Any, path: str, depth: int) -> Any:
        nonlocal replaced
        if depth > MAX_DEPTH:
            raise RpcError(
                ErrorCode.FORMAT_VIOLATION,
                f"payload nested deeper than {MAX_DEPTH} levels at '{path[:100]}'",
            )
        if isinstance(value, str):
            if _UNHOLDABLE.search(value):
                replaced += 1
                return _UNHOLDABLE.sub(REPLACEMENT, value)
            return value
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise RpcError(
                    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                    f"integer out of range (64 bits) at '{path}'",
                )
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise RpcError(
                    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                    f"number {value!r} is not a finite number at '{path}'",
                )
            return value
        if isinstance(value, dict):
            return {
                walk(k, path, depth): walk(v, f"{path}/{k}", depth + 1) for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]
        return value

    return walk(payload, "", 0), replaced
