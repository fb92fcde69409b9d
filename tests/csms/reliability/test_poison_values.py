"""Values a schema allows but Postgres or arithmetic cannot hold (15.2).

Each is answered with the spec's CALLERROR -- never InternalError -- or stored with
the bad part replaced/flagged; a transaction's end always ends its session.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import RunningCsms
from tests.csms.test_bad_input import assert_still_serving
from tests.ocpp_clients import RawCharger, raw_charger

V16, V201 = "ocpp1.6", "ocpp2.0.1"
T0 = "2026-01-01T00:00:00Z"


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


CONSTRAINT_CODES = {
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "FormationViolation",
    "FormatViolation",
    "ProtocolError",
}

METER_16 = {"connectorId": 1, "meterValue": [{"timestamp": T0, "sampledValue": [{"value": "1"}]}]}

# (name, protocol, raw frame): each must get a constraint CALLERROR with its own id.
REFUSED = [
    ("1.6 sample value NaN", V16, frame("m", "MeterValues", {**METER_16, "meterValue": [
        {"timestamp": T0, "sampledValue": [{"value": "NaN"}]}]})),
    ("1.6 sample value Infinity", V16, frame("m", "MeterValues", {**METER_16, "meterValue": [
        {"timestamp": T0, "sampledValue": [{"value": "1e999"}]}]})),
    ("1.6 connectorId above int32", V16, frame("m", "StatusNotification", {
        "connectorId": 2**40, "errorCode": "NoError", "status": "Available"})),
    ("1.6 connectorId above int64", V16, frame("m", "StatusNotification", {
        "connectorId": 2**70, "errorCode": "NoError", "status": "Available"})),
    ("1.6 year 1 with an offset", V16, frame("m", "StartTransaction", {
        "connectorId": 1, "idTag": "A", "meterStart": 0,
        "timestamp": "0001-01-01T00:30:00+01:00"})),
    ("1.6 year 9999", V16, frame("m", "StartTransaction", {
        "connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "9999-12-31T23:59:59Z"})),
    ("1.6 NaN literal", V16, '[2, "m", "MeterValues", {"connectorId": NaN, "meterValue": []}]'),
    ("1.6 600-deep nesting", V16, frame("m", "DataTransfer", {"vendorId": "x", "x": deep(600)})),
    ("2.0.1 600-deep nesting", V201, frame("m", "DataTransfer", {
        "vendorId": "x", "data": deep(600)})),
    ("2.0.1 Infinity literal", V201, '[2, "m", "MeterValues", {"evseId": 1, "meterValue": [{'
        '"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": Infinity}]}]}]'),
    ("2.0.1 value beyond float", V201, '[2, "m", "MeterValues", {"evseId": 1, "meterValue": [{'
        '"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 1e400}]}]}]'),
    ("2.0.1 register beyond any meter", V201, frame("m", "MeterValues", {
        "evseId": 1, "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1e308}]}]})),
    ("2.0.1 -0.0 in an integer field", V201, frame("m", "MeterValues", {
        "evseId": -0.0, "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1}]}]})),
]  # fmt: skip


@pytest.mark.parametrize(("name", "protocol", "raw"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_an_unstorable_value_gets_a_constraint_callerror(
    csms: RunningCsms, name: str, protocol: str, raw: str
) -> None:
    async with raw_charger(csms.ocpp_url, "POISON", protocol) as charger:
        answer = await charger.exchange(raw)
        assert answer[0] == 4 and answer[1] == "m" and answer[2] in CONSTRAINT_CODES, answer
        await assert_still_serving(csms, charger, protocol)


async def test_a_nul_in_a_fault_is_stored_replaced_not_lost(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "POISON", V16) as charger:
        status = {"connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted"}
        answer = await charger.exchange(frame("f", "StatusNotification", status | {
            "info": "relay\u0000welded"}))  # fmt: skip
        assert answer == [3, "f", {}]
        await charger.exchange(frame("a", "Authorize", {"idTag": "T\u0000"}))
    row = await csms.pool.fetchrow("SELECT status, info FROM connectors WHERE connector_id = 1")
    assert row is not None
    assert row["status"] == "Faulted" and row["info"] == "relay\ufffdwelded"


async def _start_16(charger: RawCharger) -> int:
    start = await charger.exchange(frame("s", "StartTransaction", {
        "connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": T0}))  # fmt: skip
    return int(start[2]["transactionId"])


async def test_a_stop_with_a_nan_sample_ends_the_session_and_keeps_the_rest(
    csms: RunningCsms,
) -> None:
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "POISON", V16) as charger:
        tx = await _start_16(charger)
        samples = [
            {"timestamp": "2026-01-01T00:30:00Z", "sampledValue": [{"value": "5000"}]},
            {"timestamp": "2026-01-01T00:45:00Z", "sampledValue": [{"value": "NaN"}]},
            {"timestamp": "not-a-time", "sampledValue": [{"value": "6000"}]},
        ]
        stop = await charger.exchange(frame("e", "StopTransaction", {
            "meterStop": 10000, "timestamp": "2026-01-01T01:00:00Z", "transactionId": tx,
            "transactionData": samples}))  # fmt: skip
        assert stop[:2] == [3, "e"]
    session = await csms.pool.fetchrow("SELECT status, meter_stop_wh, energy_wh FROM sessions")
    assert session is not None
    assert dict(session) == {"status": "ended", "meter_stop_wh": 10000, "energy_wh": 10000}
    assert await csms.pool.fetchval("SELECT array_agg(value) FROM meter_samples") == [5000]
    rejected = await csms.pool.fetchval(
        "SELECT payload->'rejected' FROM events WHERE type = 'session_ended'"
    )
    assert len(json.loads(rejected)) == 2


async def test_a_stop_stamped_in_year_9999_still_ends_the_session(csms: RunningCsms) -> None:
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "POISON", V16) as charger:
        tx = await _start_16(charger)
        stop = await charger.exchange(frame("e", "StopTransaction", {
            "meterStop": 2**62, "timestamp": "9999-12-31T23:59:59Z",
            "transactionId": tx}))  # fmt: skip
        assert stop[:2] == [3, "e"]
    session = await csms.pool.fetchrow("SELECT status, ended_at, meter_stop_wh FROM sessions")
    assert session is not None
    assert session["status"] == "ended" and session["ended_at"].year < 9999
    # meterStop beyond any meter is dropped and flagged; the latest reading (meterStart) stands
    assert session["meter_stop_wh"] == 0
    rejected = await csms.pool.fetchval(
        "SELECT payload->'rejected' FROM events WHERE type = 'session_ended'"
    )
    assert len(json.loads(rejected)) == 2


async def test_a_register_from_minus_to_plus_1e308_can_still_be_ended(csms: RunningCsms) -> None:
    def event(kind: str, seq: int, value: float) -> str:
        return frame(f"t{seq}", "TransactionEvent", {
            "eventType": kind, "timestamp": T0, "triggerReason": "Authorized", "seqNo": seq,
            "transactionInfo": {"transactionId": "TX1"}, "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": value}]}]})  # fmt: skip

    async with raw_charger(csms.ocpp_url, "POISON", V201) as charger:
        started = await charger.exchange(event("Started", 0, -1e308))
        assert started[0] in (3, 4) and (started[0] == 3 or started[2] in CONSTRAINT_CODES)
        ended = await charger.exchange(event("Ended", 1, 1e308))
        assert ended[:2] == [3, "t1"]
        await assert_still_serving(csms, charger, V201)
    assert await csms.pool.fetchval("SELECT status FROM sessions") == "ended"


async def test_a_lone_surrogate_is_stored_replaced_even_in_the_message_id(
    csms: RunningCsms,
) -> None:
    """Found by the fuzz test: "\\ud800" is valid JSON but no character UTF-8 can hold."""
    async with raw_charger(csms.ocpp_url, "POISON", V201) as charger:
        event = {"generatedAt": T0, "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": T0, "trigger": "Alerting", "actualValue": "x\ud800",
            "eventNotificationType": "HardWiredNotification", "component": {"name": "C"},
            "variable": {"name": "V"}}]}  # fmt: skip
        answer = await charger.exchange(frame("\ud800", "NotifyEvent", event))
        assert answer == [3, "\ud800", {}]
        await assert_still_serving(csms, charger, V201)
    stored = await csms.pool.fetchval(
        "SELECT payload::text FROM events WHERE type = 'charger_events_notified'"
    )
    assert "x\ufffd" in stored
