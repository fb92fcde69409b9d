"""Answers: constant empty ones are built once, the others per message, all schema-checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ocpp.v16 import call_result as v16_result
from ocpp.v201 import call_result as v201_result

from csms.rpc_frames import empty_answer as _empty_answer
from csms.rpc_frames import unset as _unset
from tests.conftest import RunningCsms
from tests.ocpp_clients import raw_charger


def test_only_an_answer_with_no_field_set_is_a_constant() -> None:
    assert _unset(v16_result.MeterValues())
    assert _unset(v201_result.TransactionEvent())
    assert not _unset(v201_result.TransactionEvent(total_cost=1.5))
    assert not _unset(v16_result.Heartbeat(current_time="2026-01-01T00:00:00Z"))
    assert _empty_answer("MeterValues", "1.6", True) == "{}"
    assert _empty_answer("TransactionEvent", "2.0.1", True) == "{}"
    # An answer the schema refuses empty is left to the general path (which refuses it).
    assert _empty_answer("Heartbeat", "1.6", True) is None
    assert _empty_answer("Heartbeat", "1.6", False) == "{}"


async def test_constant_and_per_message_answers_on_the_wire(csms: RunningCsms) -> None:
    sampled = {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "10"}]}
    async with raw_charger(csms.ocpp_url, "CP-ANSWERS", "ocpp1.6") as charger:
        for message_id in ("m-1", 'm"2'):  # an id JSON must escape
            meter = [2, message_id, "MeterValues", {"connectorId": 1, "meterValue": [sampled]}]
            await charger.websocket.send(json.dumps(meter))
            answer = await charger.answer_to(json.dumps([2, "hb", "Heartbeat", {}]))
            # the CALLRESULT of the meter value came first, byte for byte as before
            assert answer[0] == 3 and "currentTime" in answer[2]
            before = datetime.now(UTC) - timedelta(seconds=60)
            assert datetime.fromisoformat(answer[2]["currentTime"]) >= before
    async with raw_charger(csms.ocpp_url, "CP-ANSWERS-2", "ocpp1.6") as charger:
        meter = [2, 'm"3', "MeterValues", {"connectorId": 1, "meterValue": [sampled]}]
        await charger.websocket.send(json.dumps(meter))
        while True:
            frame = await charger.websocket.recv()
            if json.loads(frame)[0] == 3:
                break
        assert frame == '[3,"m\\"3",{}]'


def test_a_line_logged_while_handling_a_message_names_it() -> None:
    from csms.logs import HANDLING, add_handling

    assert add_handling(None, "info", {"event": "x"}) == {"event": "x"}
    token = HANDLING.set(("MeterValues", "m-1"))
    try:
        line = add_handling(None, "warning", {"event": "meter.unknown_transaction"})
        assert line["action"] == "MeterValues" and line["message_id"] == "m-1"
        named = add_handling(None, "warning", {"event": "rpc.invalid_answer", "action": "Reset"})
        assert named["action"] == "Reset"  # what a line says itself wins
    finally:
        HANDLING.reset(token)
