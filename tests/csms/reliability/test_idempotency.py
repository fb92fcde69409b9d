"""A message a charger sends again is answered again but stored once, with one event (15.3)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import raw_charger

V16, V201 = "ocpp1.6", "ocpp2.0.1"
T0 = "2026-01-01T00:00:00Z"


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


async def count(csms: RunningCsms, sql: str) -> int:
    return int(await csms.pool.fetchval(sql))


METER_16 = {
    "connectorId": 1,
    "meterValue": [{"timestamp": T0, "sampledValue": [{"value": "1500"}, {"value": "7",
                    "measurand": "Current.Import", "unit": "A"}]}],
}  # fmt: skip


async def test_the_same_meter_values_three_times_are_stored_once(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
        for _ in range(3):
            assert await charger.exchange(frame("mv-1", "MeterValues", METER_16)) == [
                3, "mv-1", {}]  # fmt: skip
    # ... and after a reconnect, under a new message id (a charger's queue replayed)
    async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
        assert (await charger.exchange(frame("mv-9", "MeterValues", METER_16)))[0] == 3
    assert await count(csms, "SELECT count(*) FROM meter_samples") == 2
    assert await count(csms, "SELECT count(*) FROM events WHERE type = 'meter_sampled'") == 1


async def test_a_different_sample_set_is_not_a_duplicate(csms: RunningCsms) -> None:
    later = json.loads(json.dumps(METER_16))
    later["meterValue"][0]["timestamp"] = "2026-01-01T00:01:00Z"
    async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
        await charger.exchange(frame("a", "MeterValues", METER_16))
        await charger.exchange(frame("a", "MeterValues", later))  # same id, new content
    assert await count(csms, "SELECT count(*) FROM events WHERE type = 'meter_sampled'") == 2


def tx_event(kind: str, seq: int, wh: float) -> dict[str, Any]:
    return {
        "eventType": kind, "timestamp": T0, "triggerReason": "MeterValuePeriodic", "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-1"}, "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": f"2026-01-01T00:0{seq}:00Z",
                        "sampledValue": [{"value": wh}]}],
    }  # fmt: skip


async def test_transaction_events_with_the_same_seq_no_are_stored_once(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms()
    async with raw_charger(csms.ocpp_url, "DUP", V201) as charger:
        for message_id, kind, seq, wh in [
            ("1", "Started", 0, 0), ("2", "Updated", 1, 1000), ("3", "Updated", 1, 1000),
            ("4", "Ended", 2, 2000),
        ]:  # fmt: skip
            assert (await charger.exchange(frame(message_id, "TransactionEvent",
                                                 tx_event(kind, seq, wh))))[0] == 3  # fmt: skip
    # The CSMS crashed before the answer to the end arrived; the charger reconnects (to any
    # node) and sends its queue again, with new message ids.
    other = await start_csms()
    async with raw_charger(other.ocpp_url, "DUP", V201) as charger:
        for message_id, kind, seq, wh in [("r1", "Updated", 1, 1000), ("r2", "Ended", 2, 2000)]:
            answer = await charger.exchange(
                frame(message_id, "TransactionEvent", tx_event(kind, seq, wh))
            )
            assert answer[:2] == [3, message_id]
    types = [r["type"] for r in await csms.pool.fetch("SELECT type FROM events WHERE "
             "type LIKE 'session%' ORDER BY id")]  # fmt: skip
    assert types == ["session_started", "session_updated", "session_ended"]
    assert await count(csms, "SELECT count(*) FROM meter_samples") == 3


async def test_a_resent_start_gets_the_same_transaction_id_and_one_event(
    csms: RunningCsms,
) -> None:
    await csms.add_token("TAG")
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": T0}
    async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
        first = await charger.exchange(frame("s1", "StartTransaction", start))
    async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
        again = await charger.exchange(frame("s2", "StartTransaction", start))
        tx = first[2]["transactionId"]
        assert again[2]["transactionId"] == tx and again[2]["idTagInfo"]["status"] == "Accepted"
        stop = {"meterStop": 500, "timestamp": "2026-01-01T01:00:00Z", "transactionId": tx}
        for message_id in ("e1", "e2"):
            assert (await charger.exchange(frame(message_id, "StopTransaction", stop)))[0] == 3
    assert await count(csms, "SELECT count(*) FROM events WHERE type = 'session_started'") == 1
    assert await count(csms, "SELECT count(*) FROM events WHERE type = 'session_ended'") == 1


async def test_a_timestampless_status_repeated_after_a_reconnect_is_a_new_fact(
    csms: RunningCsms,
) -> None:
    """A charger that restarts its message counter after a reboot repeats id and payload."""
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    for _ in range(2):
        async with raw_charger(csms.ocpp_url, "DUP", V16) as charger:
            await charger.exchange(frame("1", "StatusNotification", status))
            await charger.exchange(frame("1", "StatusNotification", status))  # same socket
    assert (
        await count(csms, "SELECT count(*) FROM events WHERE type = 'connector_status_changed'")
        == 2
    )
