"""The yardstick toy CSMS answers both OCPP versions as its contract says."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol


async def _call(ws: ClientConnection, message_id: str, action: str, payload: object) -> Any:
    await ws.send(json.dumps([2, message_id, action, payload]))
    return json.loads(await ws.recv())


async def test_toy_boots_both_versions_and_numbers_transactions() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.toy_csms", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("ready ws://127.0.0.1:"), line
        url = line.split()[1]

        async with connect(f"{url}/TOY-16", subprotocols=[Subprotocol("ocpp1.6")]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            boot = await _call(
                ws, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
            )
            assert boot[:2] == [3, "1"] and boot[2]["status"] == "Accepted"
            start = {
                "connectorId": 1,
                "idTag": "ANY",
                "meterStart": 0,
                "timestamp": "2026-01-01T00:00:00Z",
            }
            first = await _call(ws, "2", "StartTransaction", start)
            second = await _call(ws, "3", "StartTransaction", start)
            assert first[2]["idTagInfo"] == {"status": "Accepted"}
            assert second[2]["transactionId"] > first[2]["transactionId"]
            meter = {
                "connectorId": 1,
                "meterValue": [
                    {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}
                ],
            }
            assert await _call(ws, "4", "MeterValues", meter) == [3, "4", {}]

        async with connect(f"{url}/TOY-201", subprotocols=[Subprotocol("ocpp2.0.1")]) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            boot = await _call(
                ws,
                "a",
                "BootNotification",
                {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
            )
            assert boot[:2] == [3, "a"] and boot[2]["status"] == "Accepted"
            event = {
                "eventType": "Started",
                "timestamp": "2026-01-01T00:00:00Z",
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "T1"},
                "idToken": {"idToken": "ANY", "type": "ISO14443"},
            }
            answer = await _call(ws, "b", "TransactionEvent", event)
            assert answer == [3, "b", {"idTokenInfo": {"status": "Accepted"}}]
            # The library's schema validation is the only one: a bad payload is a CALLERROR.
            bad = await _call(ws, "c", "Heartbeat", {"unexpected": 1})
            assert bad[:3] == [4, "c", "FormatViolation"]
    finally:
        process.terminate()
        await process.wait()
