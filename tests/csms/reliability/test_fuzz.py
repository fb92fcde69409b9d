"""Hypothesis-driven mutations of valid frames of both versions against a running CSMS (15.10).

Every frame gets a well-formed answer (a CALLRESULT, or a CALLERROR with a code
of its version's table, never InternalError, with the frame's own id or "-1")
or, where the spec says so, none; the server keeps serving on the same socket.
After each frame a Heartbeat sentinel proves the socket still answers in order.
Bounded for CI: ``FUZZ_EXAMPLES`` frames (300 by default); ``FUZZ_SEED`` picks
another sequence than CI's fixed one.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import RunningCsms

V16, V201 = "ocpp1.6", "ocpp2.0.1"
T = "2026-01-01T00:00:00Z"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))  # 0: the fixed CI sequence

CODES = {
    V16: {"NotImplemented", "NotSupported", "ProtocolError", "SecurityError",
          "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
          "TypeConstraintViolation", "GenericError"},
    V201: {"NotImplemented", "NotSupported", "ProtocolError", "SecurityError",
           "FormatViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
           "TypeConstraintViolation", "GenericError", "RpcFrameworkError",
           "MessageTypeNotSupported"},
}  # fmt: skip

SEEDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    V16: [
        ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
        ("Heartbeat", {}),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                "status": "Faulted", "info": "x", "timestamp": T}),
        ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [
            {"timestamp": T, "sampledValue": [{"value": "10", "unit": "kWh"}]}]}),
        ("Authorize", {"idTag": "TAG"}),
        ("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 0,
                              "timestamp": T}),
        ("StopTransaction", {"meterStop": 10, "timestamp": T, "transactionId": 1,
                             "transactionData": [{"timestamp": T,
                                                  "sampledValue": [{"value": "5"}]}]}),
        ("DataTransfer", {"vendorId": "v", "data": "d"}),
    ],
    V201: [
        ("BootNotification", {"reason": "PowerUp",
                              "chargingStation": {"model": "M", "vendorName": "V"}}),
        ("Heartbeat", {}),
        ("StatusNotification", {"timestamp": T, "connectorStatus": "Available",
                                "evseId": 1, "connectorId": 1}),
        ("MeterValues", {"evseId": 1, "meterValue": [
            {"timestamp": T, "sampledValue": [{"value": 1.5}]}]}),
        ("TransactionEvent", {"eventType": "Updated", "timestamp": T,
                              "triggerReason": "MeterValuePeriodic", "seqNo": 1,
                              "transactionInfo": {"transactionId": "TX"},
                              "evse": {"id": 1, "connectorId": 1},
                              "meterValue": [{"timestamp": T,
                                              "sampledValue": [{"value": -1e308}]}]}),
        ("TransactionEvent", {"eventType": "Ended", "timestamp": T,
                              "triggerReason": "StopAuthorized", "seqNo": 2,
                              "transactionInfo": {"transactionId": "TX"},
                              "meterValue": [{"timestamp": T,
                                              "sampledValue": [{"value": 1e308}]}]}),
        ("Authorize", {"idToken": {"idToken": "TAG", "type": "ISO14443"}}),
        ("NotifyEvent", {"generatedAt": T, "seqNo": 0, "eventData": [
            {"eventId": 1, "timestamp": T, "trigger": "Alerting", "actualValue": "x",
             "eventNotificationType": "HardWiredNotification",
             "component": {"name": "C"}, "variable": {"name": "V"}}]}),
    ],
}  # fmt: skip


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


POISON = st.sampled_from([
    "\x00", "a\x00b", "", "x" * 3000, math.nan, math.inf, -math.inf, -0.0, 1.0, 1e308,
    -1e308, 2**31, 2**63, 2**64, -(2**70), True, None, [], {}, [None], _deep(40),
    _deep(600), "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", "NaN", "1e999", "\ud800",
    "2026-13-45T99:99:99Z", "Infinity", 1e-320,
])  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


@st.composite
def mutated_frames(draw: st.DrawFn) -> tuple[str, str]:
    protocol = draw(st.sampled_from([V16, V201]))
    action, payload = draw(st.sampled_from(SEEDS[protocol]))
    frame: list[Any] = [
        2,
        f"f{draw(st.integers(0, 10**6))}",
        action,
        json.loads(json.dumps(payload)),
    ]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["leaf", "leaf", "drop", "add", "frame", "text"]))
        paths = [p for p in _paths(frame[3]) if p] if isinstance(frame[3], dict | list) else []
        if kind == "leaf" and paths:
            path = draw(st.sampled_from(paths))
            target = frame[3]
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = copy.deepcopy(draw(POISON))
        elif kind == "drop" and paths:
            path = draw(st.sampled_from(paths))
            target = frame[3]
            for step in path[:-1]:
                target = target[step]
            if isinstance(target, dict):
                target.pop(path[-1], None)
        elif kind == "add" and isinstance(frame[3], dict):
            frame[3][draw(st.sampled_from(["extra", "\x00", "seqNo", "evse"]))] = copy.deepcopy(
                draw(POISON)
            )
        elif kind == "frame":
            index = draw(st.integers(0, 3))
            frame[index] = draw(st.one_of(POISON, st.sampled_from([3, 4, 5, "2", "Reset"])))
    text = json.dumps(frame, allow_nan=True)
    if draw(st.booleans()) and draw(st.booleans()):  # textual damage
        cut = draw(st.integers(0, len(text)))
        text = draw(
            st.sampled_from(
                [
                    text[:cut],
                    text[:cut] + "NaN" + text[cut:],
                    text[:cut] + "]" + text[cut:],
                    text.replace('"', "'", 1),
                ]
            )
        )
    return protocol, text


@dataclass
class FuzzRun:
    sockets: dict[str, ClientConnection] = field(default_factory=dict)
    frames: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)


@pytest.fixture
async def fuzz(csms: RunningCsms) -> AsyncIterator[FuzzRun]:
    await csms.add_token("TAG")
    run = FuzzRun()
    yield run
    for socket in run.sockets.values():
        await socket.close()
    print(f"\nfuzz: {run.frames} frames, answers {dict(run.answers)}, "
          f"{len(run.anomalies)} anomalies")  # fmt: skip
    assert run.anomalies == []
    assert run.frames >= min(EXAMPLES, 100)


async def _socket(run: FuzzRun, csms: RunningCsms, protocol: str) -> ClientConnection:
    socket = run.sockets.get(protocol)
    if socket is None or socket.close_code is not None:
        if socket is not None:
            run.anomalies.append(f"{protocol}: socket closed {socket.close_code}")
        socket = await connect(f"{csms.ocpp_url}/FUZZ-{protocol[-3:]}", subprotocols=[protocol])  # type: ignore[list-item]
        run.sockets[protocol] = socket
    return socket


def _check(protocol: str, sent: str, answer: Any) -> str | None:
    """Why ``answer`` is not a well-formed answer to ``sent``, or None."""
    if not isinstance(answer, list) or not answer:
        return f"not a frame: {answer!r}"
    if answer[0] == 3:
        return None if len(answer) == 3 and isinstance(answer[2], dict) else "bad CALLRESULT"
    if answer[0] != 4 or len(answer) != 5:
        return f"unexpected frame {answer!r}"[:200]
    code, description, details = answer[2], answer[3], answer[4]
    if code not in CODES[protocol]:
        return f"code {code!r} not in the {protocol} table"
    if not (isinstance(description, str) and len(description) <= 255 and isinstance(details, dict)):
        return "bad CALLERROR description/details"
    try:
        sent_id = json.loads(sent)[1]
    except Exception:
        sent_id = None
    if answer[1] not in ("-1", sent_id):
        return f"answer id {answer[1]!r} not the frame's"
    return None


@settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED == 0,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@seed(SEED)
@given(case=mutated_frames())
async def test_mutated_frames_get_well_formed_answers(
    csms: RunningCsms, fuzz: FuzzRun, case: tuple[str, str]
) -> None:
    protocol, text = case
    socket = await _socket(fuzz, csms, protocol)
    fuzz.frames += 1
    sentinel = f"sentinel-{fuzz.frames}"
    try:
        await socket.send(text)
        await socket.send(json.dumps([2, sentinel, "Heartbeat", {}]))
        while True:
            answer = json.loads(await socket.recv(decode=True))
            if isinstance(answer, list) and answer[:2] == [3, sentinel]:
                break
            if isinstance(answer, list) and len(answer) > 2 and answer[0] == 2:
                continue  # a call from the CSMS (e.g. a remote stop): not an answer
            problem = _check(protocol, text, answer)
            fuzz.answers["CALLRESULT" if answer[0] == 3 else str(answer[2])] += 1
            if problem is not None:
                fuzz.anomalies.append(f"{protocol} {text[:120]!r}: {problem}")
    except Exception as error:  # the socket died, or an answer never came
        fuzz.anomalies.append(f"{protocol} {text[:120]!r}: {type(error).__name__} {error}")
        fuzz.sockets.pop(protocol, None)
