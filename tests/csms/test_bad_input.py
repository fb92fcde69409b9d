"""Malformed frames and payloads get the spec's CALLERROR; nothing else breaks.

After every bad input, the same connection must still answer, and another
charger must be served as before.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import RawCharger, raw_charger

V16, V201 = "ocpp1.6", "ocpp2.0.1"

# (name, frame, {protocol: (expected message id, expected error code)})
CASES = [
    (
        "not JSON",
        "this is not json",
        {V16: ("-1", "FormationViolation"), V201: ("-1", "RpcFrameworkError")},
    ),
    (
        "JSON object",
        '{"a": 1}',
        {V16: ("-1", "FormationViolation"), V201: ("-1", "RpcFrameworkError")},
    ),
    ("empty array", "[]", {V16: ("-1", "FormationViolation"), V201: ("-1", "RpcFrameworkError")}),
    (
        "CALL without payload",
        '[2, "m1", "Heartbeat"]',
        {V16: ("m1", "FormationViolation"), V201: ("m1", "RpcFrameworkError")},
    ),
    (
        "numeric message id",
        '[2, 17, "Heartbeat", {}]',
        {V16: ("-1", "FormationViolation"), V201: ("-1", "RpcFrameworkError")},
    ),
    (
        "message id over 36 chars",
        json.dumps([2, "x" * 37, "Heartbeat", {}]),
        {V16: ("-1", "FormationViolation"), V201: ("-1", "RpcFrameworkError")},
    ),
    (
        "payload not an object",
        '[2, "m2", "Heartbeat", []]',
        {V16: ("m2", "FormationViolation"), V201: ("m2", "RpcFrameworkError")},
    ),
    (
        "unknown action",
        '[2, "m3", "SelfDestruct", {}]',
        {V16: ("m3", "NotImplemented"), V201: ("m3", "NotImplemented")},
    ),
    (
        "additional property",
        '[2, "m4", "Heartbeat", {"extra": 1}]',
        {V16: ("m4", "FormationViolation"), V201: ("m4", "FormatViolation")},
    ),
    (
        "unknown message type",
        '[5, "m5", "Heartbeat", {}]',
        {V201: ("m5", "MessageTypeNotSupported")},
    ),
]


def call_frame(message_id: str, action: str, payload: dict[str, object]) -> str:
    return json.dumps([2, message_id, action, payload])


STATUS_16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
STATUS_201 = {"timestamp": "2026-01-01T00:00:00Z", "evseId": 1, "connectorId": 1}
START_16 = {"connectorId": 1, "idTag": "A", "meterStart": 0}

V16_PAYLOAD_CASES = [
    (
        "missing field",
        call_frame("p1", "StatusNotification", {"connectorId": 1, "status": "Available"}),
        "ProtocolError",
    ),
    (
        "wrong type",
        call_frame("p2", "StatusNotification", STATUS_16 | {"connectorId": "one"}),
        "TypeConstraintViolation",
    ),
    (
        "value not in enum",
        call_frame("p3", "StatusNotification", STATUS_16 | {"status": "Flying"}),
        "PropertyConstraintViolation",
    ),
    (
        "string too long",
        call_frame("p4", "Authorize", {"idTag": "T" * 21}),
        "TypeConstraintViolation",
    ),
    (
        "action only a CSMS receives",
        call_frame("p5", "RemoteStartTransaction", {"idTag": "A"}),
        "NotSupported",
    ),
    (
        "timestamp not a date",
        call_frame("p6", "StartTransaction", START_16 | {"timestamp": "yesterday"}),
        "PropertyConstraintViolation",
    ),
]

V201_PAYLOAD_CASES = [
    (
        "missing field",
        call_frame("q1", "StatusNotification", STATUS_201),
        "OccurenceConstraintViolation",
    ),
    (
        "value not in enum",
        call_frame("q2", "StatusNotification", STATUS_201 | {"connectorStatus": "Sleeping"}),
        "PropertyConstraintViolation",
    ),
    (
        "empty list",
        call_frame("q3", "MeterValues", {"evseId": 1, "meterValue": []}),
        "OccurenceConstraintViolation",
    ),
]


async def assert_still_serving(csms: RunningCsms, charger: RawCharger, protocol: str) -> None:
    """The same socket answers the next CALL, and a second charger is served too."""
    answer = await charger.exchange('[2, "after", "Heartbeat", {}]')
    assert answer[0:2] == [3, "after"] and "currentTime" in answer[2]
    async with raw_charger(csms.ocpp_url, "BYSTANDER", protocol) as other:
        assert (await other.exchange('[2, "b", "Heartbeat", {}]'))[0] == 3


@pytest.mark.parametrize("protocol", [V16, V201])
@pytest.mark.parametrize(("name", "frame", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_malformed_frame_gets_the_spec_callerror(
    csms: RunningCsms, protocol: str, name: str, frame: str, expected: dict[str, tuple[str, str]]
) -> None:
    async with raw_charger(csms.ocpp_url, "BAD", protocol) as charger:
        if protocol not in expected:  # 1.6 section 4.1.3: unknown message types are ignored
            await charger.send(frame)
        else:
            answer = await charger.exchange(frame)
            message_id, code = expected[protocol]
            assert answer[:3] == [4, message_id, code]
            assert (
                isinstance(answer[3], str) and len(answer[3]) <= 255 and isinstance(answer[4], dict)
            )
        await assert_still_serving(csms, charger, protocol)


@pytest.mark.parametrize(
    ("name", "frame", "code"), V16_PAYLOAD_CASES, ids=[c[0] for c in V16_PAYLOAD_CASES]
)
async def test_invalid_v16_payload(csms: RunningCsms, name: str, frame: str, code: str) -> None:
    async with raw_charger(csms.ocpp_url, "BAD", V16) as charger:
        answer = await charger.exchange(frame)
        assert answer[0] == 4 and answer[1] == json.loads(frame)[1] and answer[2] == code
        await assert_still_serving(csms, charger, V16)


@pytest.mark.parametrize(
    ("name", "frame", "code"), V201_PAYLOAD_CASES, ids=[c[0] for c in V201_PAYLOAD_CASES]
)
async def test_invalid_v201_payload(csms: RunningCsms, name: str, frame: str, code: str) -> None:
    async with raw_charger(csms.ocpp_url, "BAD", V201) as charger:
        answer = await charger.exchange(frame)
        assert answer[0] == 4 and answer[1] == json.loads(frame)[1] and answer[2] == code
        await assert_still_serving(csms, charger, V201)


@pytest.mark.parametrize("protocol", [V16, V201])
async def test_callresult_for_an_unknown_message_id_is_dropped(
    csms: RunningCsms, protocol: str
) -> None:
    async with raw_charger(csms.ocpp_url, "BAD", protocol) as charger:
        await charger.send('[3, "never-sent", {}]')
        await charger.send('[4, "never-sent-either", "GenericError", "", {}]')
        # The next frame the CSMS sends is the Heartbeat's answer: nothing answered the two above.
        await assert_still_serving(csms, charger, protocol)


@pytest.mark.parametrize(
    ("protocol", "code"), [(V16, "FormationViolation"), (V201, "FormatViolation")]
)
async def test_oversize_message_gets_a_callerror_and_the_connection_stays(
    start_csms: StartCsms, protocol: str, code: str
) -> None:
    csms = await start_csms(max_message_size=2048)
    frame = json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 5000}])
    async with raw_charger(csms.ocpp_url, "BAD", protocol) as charger:
        answer = await charger.exchange(frame)
        assert answer[:3] == [4, "big", code] and "2048" in answer[3]
        await assert_still_serving(csms, charger, protocol)


async def test_frame_beyond_the_hard_limit_closes_only_that_connection(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(max_message_size=1024)
    async with raw_charger(csms.ocpp_url, "HUGE", V16) as charger:
        await charger.send("[" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await charger.websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    async with raw_charger(csms.ocpp_url, "BYSTANDER", V16) as other:
        assert (await other.exchange('[2, "b", "Heartbeat", {}]'))[0] == 3


async def test_bad_data_inside_a_stop_is_left_out_and_the_session_ends(csms: RunningCsms) -> None:
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "CP", V16) as charger:
        start = await charger.exchange(
            json.dumps(
                [
                    2,
                    "s",
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": "TAG",
                        "meterStart": 0,
                        "timestamp": "2026-01-01T00:00:00Z",
                    },
                ]
            )
        )
        tx = start[2]["transactionId"]
        stop = await charger.exchange(
            json.dumps(
                [
                    2,
                    "e",
                    "StopTransaction",
                    {
                        "meterStop": 10,
                        "timestamp": "2026-01-01T01:00:00Z",
                        "transactionId": tx,
                        "transactionData": [
                            {"timestamp": "not-a-time", "sampledValue": [{"value": "5"}]}
                        ],
                    },
                ]
            )
        )
        # Issue 15.2: an end is always stored; the unreadable sample is left out, named.
        assert stop == [3, "e", {}]
    session = await csms.pool.fetchrow("SELECT status, meter_stop_wh FROM sessions")
    assert session is not None
    assert (session["status"], session["meter_stop_wh"]) == ("ended", 10)
    rejected = await csms.pool.fetchval(
        "SELECT payload->'rejected' FROM events WHERE type = 'session_ended'"
    )
    assert "not-a-time" in rejected
