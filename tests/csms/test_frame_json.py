"""The frame path's JSON by orjson gives exactly what json gives (csms.rpc_frames, csms.dedupe).

A frame is read by orjson where that is the same as ``json.loads`` (values and
types, refusals included), and a message's digest is taken of the same bytes as
``json.dumps(sort_keys=True, ensure_ascii=False)`` wrote: a message resent across
an upgrade must keep its event ids.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.dedupe import canonical_json, message_key
from csms.events import MeterSample
from csms.meter import earliest, new_sample, samples_from_v16, samples_from_v201
from csms.poison import plain
from csms.rpc_frames import read_frame, snake_case_keys


def _json_verdict(text: str) -> tuple[str, Any]:
    try:
        return "ok", json.loads(text)
    except RecursionError:
        return "RecursionError", None
    except ValueError:
        return "ValueError", None


def _frame_verdict(text: str) -> tuple[str, Any]:
    try:
        return "ok", read_frame(text)[0]
    except RecursionError:
        return "RecursionError", None
    except ValueError:
        return "ValueError", None


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 and 1.0 differ, so do 0.0 and -0.0).

    Iterative: a frame may nest deeper than Python's recursion limit.
    """
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            pending.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if math.isnan(x) != math.isnan(y):
                return False
            if not math.isnan(x) and (x != y or math.copysign(1.0, x) != math.copysign(1.0, y)):
                return False
        elif x != y:
            return False
    return True


def _assert_read_as_json(text: str) -> None:
    expected, got = _json_verdict(text), _frame_verdict(text)
    assert expected[0] == got[0], text[:200]
    assert _same(expected[1], got[1]), text[:200]


EDGE_FRAMES = [
    '[2, "m", "MeterValues", {"connectorId": 1}]',
    '[2, "m", "X", {"a": 18446744073709551615}]',  # the largest uint64: an int for both
    '[2, "m", "X", {"a": 18446744073709551616}]',  # orjson: a float
    '[2, "m", "X", {"a": -9223372036854775808}]',
    '[2, "m", "X", {"a": -9223372036854775809}]',  # orjson: the float -2**63
    '[2, "m", "X", {"a": 123456789012345678901234567890}]',
    '[18446744073709551616, "m", "X", {}]',  # the message type itself
    '[2, "m", "X", {"a": -9.3e18, "b": 9.3e18, "c": 1e19}]',  # real floats that large
    '[2, "m", "X", {"a": 1' + "0" * 5000 + "}]",  # beyond int's 4300 digits: json refuses
    '[2, "m", "X", {"a": -0, "b": -0.0, "c": 1.0, "d": 1e5, "e": 0.1e-400, "f": 5e-324}]',
    '[2, "m", "X", {"a": 1E400}]',
    '[2, "m", "X", {"a": -1e400}]',
    '[2, "m", "X", {"a": NaN}]',
    '[2, "m", "X", {"a": Infinity, "b": -Infinity}]',
    '[2, "m", "X", {"a": 1.7976931348623159e308}]',
    '[2, "m", "X", {"a": 1, "a": 2}]',  # the last one wins for both
    '[2, "\\ud800", "X", {"a": "\\udc00x"}]',  # lone surrogates: json only
    '[2, "m", "X", {"a": "\\ud83d\\ude00"}]',
    '[2, "m", "X", {"a": "\\u0000", "b": "\\u2028\u2028", "c": "\\/"}]',
    '[2, "m", "X", {"a": "é\x7f"}]',
    '\ufeff[2, "m", "X", {}]',
    '[2, "m", "X", {"a": "\x01"}]',
    '[2, "m", "X", {},]',
    '[2, "m", "X", {}] x',
    '[2, "m", "X", {}]\x00',
    '[2, "m", "X", {"a": 01}]',
    '[2, "m", "X", {"a": .5}]',
    '[2, "m", "X", {"a": +1}]',
    '[2, "m", "X", {"a": "\\x"}]',
    ' \t\n\r[2, "m", "X", {}]\r\n',
    '[2, "m", "X", {}]\x0b',
    "",
    "5",
    '"x"',
    "{}",
    "[]",
    "18446744073709551616",
]


@pytest.mark.parametrize("text", EDGE_FRAMES)
def test_a_frame_reads_as_json_reads_it(text: str) -> None:
    _assert_read_as_json(text)


@pytest.mark.parametrize("depth", [31, 32, 33, 100, 900, 990, 1000, 1024, 1025, 2000])
def test_nesting_reads_as_json_reads_it(depth: int) -> None:
    """orjson reads 1,024 levels; json stops earlier (the recursion limit): json decides."""
    _assert_read_as_json('[2, "m", "X", {"a": ' + "[" * depth + "]" * depth + "}]")


def test_plain_frames_are_read_by_orjson_and_marked_checked() -> None:
    frame, checked = read_frame('[2, "m", "MeterValues", {"connectorId": 1, "v": [1.5, "x"]}]')
    assert checked and frame == [2, "m", "MeterValues", {"connectorId": 1, "v": [1.5, "x"]}]
    for text in ('[2, "m", "X", {"a": 18446744073709551616}]', '[2, "m", "X", {"a": NaN}]'):
        assert read_frame(text)[1] is False  # the poison screen walks them as before


def test_plain_is_stricter_than_the_screen_only_for_huge_floats() -> None:
    assert plain([1.5, -(2.0**63) + 2048, 2**63 - 1, -(2**63)])
    assert not plain([2.0**63]) and not plain([-(2.0**63)])
    assert not plain([2**63]) and not plain([math.inf]) and not plain([math.nan])


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_any_json_value_reads_as_json_reads_it(value: Any) -> None:
    for ensure_ascii in (True, False):
        _assert_read_as_json(json.dumps([2, "m", "X", value], ensure_ascii=ensure_ascii))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_mutated_frame_reads_as_json_reads_it(data: st.DataObject) -> None:
    text = json.dumps(
        [2, "m1", "MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
                {"value": 12.5, "measurand": "Power.Active.Import", "unit": "kW"}]}]}]
    )  # fmt: skip
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        insert = data.draw(
            st.sampled_from(
                [
                    "",
                    "0",
                    "9" * 20,
                    "-",
                    ".",
                    "e",
                    "E5",
                    "\\",
                    '"',
                    ",",
                    "[",
                    "]",
                    "{",
                    "}",
                    "NaN",
                    "\\ud800",
                    " ",
                    "\x00",
                ]
            )
        )
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + insert + text[at + cut :]
    _assert_read_as_json(text)


def test_floats_read_as_json_reads_them() -> None:
    """Every bit pattern's shortest and long spellings, and decimal near-halfway cases."""
    seed = 12345
    for _ in range(20000):
        seed = (seed * 6364136223846793005 + 1442695040888963407) % 2**64
        x = struct.unpack("<d", struct.pack("<Q", seed))[0]
        if math.isfinite(x):
            for spelling in (repr(x), f"{x:.25e}", f"{x:.17g}"):
                _assert_read_as_json(f"[{spelling}]")


# -- the digest's bytes ----------------------------------------------------------------


def _json_canonical(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


_digest_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: json writes NaN, orjson null
    | st.text(),  # lone surrogates included
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None)
@given(_digest_values)
def test_canonical_json_is_json_dumps_byte_for_byte(value: Any) -> None:
    assert canonical_json(value) == _json_canonical(value)


@pytest.mark.parametrize(
    "value",
    [
        {"value": 1e-05, "b": 9.999999999999999e-05, "c": 1e-7, "d": 1e-100, "e": 1e-4},
        {"a": 1e16, "b": 1.5e300, "c": 9999999999999998.0, "d": -0.0, "e": 5e-324},
        {"nan": math.nan, "inf": [math.inf, -math.inf]},
        {"big": 2**64, "small": -(2**63) - 1, "u64": 2**64 - 1},
        {"\ud800": "x\udfff"},
        {"é": 1, "𐀀": 2, "\uffff": 3, "a": {"Z": None, "z": True, "": []}},
        {"ctrl": '\x00\x01\x1f\x7f\b\f\n\r\t"\\/', "sep": "\u2028\u2029\ufeff"},
        {"text": "a string that says 1e-5 and 0.00001 and null"},
    ],
)
def test_canonical_json_edge_cases(value: Any) -> None:
    assert canonical_json(value) == _json_canonical(value)


def test_a_meter_values_key_is_the_digest_json_dumps_gave() -> None:
    """The key a resend across the upgrade must find again (both versions' sample shapes)."""
    for payload in (
        {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
         "sampledValue": [{"value": "30.0", "measurand": "Energy.Active.Import.Register"}]}]},
        {"evseId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": 11000.5, "measurand": "Power.Active.Import"}, {"value": 0.00002}]}]},
    ):  # fmt: skip
        digest = hashlib.sha256(_json_canonical(payload)).hexdigest()[:32]
        assert message_key("MeterValues", "m1", payload, "c") == f"MeterValues|{digest}"


# -- snake_case keys and samples ---------------------------------------------------------


def test_snake_case_keys_passes_snake_dicts_of_scalars_on_and_converts_the_rest() -> None:
    sampled = {"value": "1", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [sampled]}]}
    snake_case_keys(payload)  # each key converted once, then known
    converted = snake_case_keys(payload)
    assert converted == {
        "connector_id": 1,
        "meter_value": [{"timestamp": "t", "sampled_value": [sampled]}],
    }
    assert converted["meter_value"][0]["sampled_value"][0] is sampled
    nested = {"unit": "Wh", "inner": {"a": 1}}
    assert snake_case_keys(nested) is not nested  # a nested dict: copied
    assert snake_case_keys({"unitOfMeasure": {"unit": "W"}}) == {"unit_of_measure": {"unit": "W"}}


def test_new_sample_is_the_dataclass() -> None:
    t = samples_from_v16([{"timestamp": "2026-01-01T00:00:00Z", "sampled_value": [{"value": "1"}]}])
    sample = t[0]
    assert sample == MeterSample(
        sampled_at=sample.sampled_at,
        measurand="Energy.Active.Import.Register",
        value=1.0,
        unit="Wh",
        phase=None,
        context="Sample.Periodic",
        location="Outlet",
    )
    made = new_sample(sample.sampled_at, "m", 2.0, None, "L1", "c", "l")
    assert made == MeterSample(sample.sampled_at, "m", 2.0, None, "L1", "c", "l")
    assert hash(made) == hash(MeterSample(sample.sampled_at, "m", 2.0, None, "L1", "c", "l"))
    with pytest.raises(AttributeError):
        made.value = 3.0  # type: ignore[misc]


def test_earliest_sample() -> None:
    samples = samples_from_v201(
        [
            {"timestamp": "2026-01-01T00:05:00Z", "sampled_value": [{"value": 1}]},
            {"timestamp": "2026-01-01T00:01:00Z", "sampled_value": [{"value": 2}]},
        ]
    )
    assert earliest(samples) == samples[1].sampled_at
    assert earliest(()) is None
