"""Raw OCPP frames for driving chargers in the outbox tests (both versions)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.ocpp_clients import RawCharger

_ids = itertools.count(1)
BASE = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def call(charger: RawCharger, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a CALL, require a CALLRESULT, return its payload.

    A CALL from the CSMS in between (what it asks a charger after boot) is answered
    as by a charger that does not implement it: CALLERROR NotImplemented.
    """
    message_id = str(next(_ids))
    answer = await charger.exchange(json.dumps([2, message_id, action, payload]), within=10)
    while answer[0] == 2:
        await charger.send(json.dumps([4, answer[1], "NotImplemented", "", {}]))
        answer = json.loads(await asyncio.wait_for(charger.websocket.recv(), 10))
    assert answer[0] == 3 and answer[1] == message_id, answer
    result: dict[str, Any] = answer[2]
    return result


def status(v201: bool, connector: int, state: str, t: float) -> tuple[str, dict[str, Any]]:
    if v201:
        payload = {"timestamp": at(t), "connectorStatus": state, "evseId": connector,
                   "connectorId": 1}  # fmt: skip
    else:
        payload = {"connectorId": connector, "errorCode": "NoError", "status": state,
                   "timestamp": at(t)}  # fmt: skip
    return "StatusNotification", payload


async def boot(charger: RawCharger, v201: bool) -> None:
    if v201:
        payload: dict[str, Any] = {
            "reason": "PowerUp",
            "chargingStation": {"model": "M2", "vendorName": "V2", "firmwareVersion": "2.0"},
        }
    else:
        payload = {"chargePointVendor": "V1", "chargePointModel": "M1", "firmwareVersion": "1.0"}
    assert (await call(charger, "BootNotification", payload))["status"] == "Accepted"


async def session_v16(charger: RawCharger, tag: str) -> str:
    """A whole 1.6 session: 1000 Wh -> 8500 Wh over 30 minutes."""
    await boot(charger, v201=False)
    await call(charger, *status(False, 1, "Available", 0))
    await call(charger, "Authorize", {"idTag": tag})
    await call(charger, *status(False, 1, "Preparing", 10))
    started = await call(
        charger, "StartTransaction",
        {"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": at(20)},
    )  # fmt: skip
    tx = started["transactionId"]
    await call(charger, *status(False, 1, "Charging", 21))
    await call(
        charger, "MeterValues",
        {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": at(900),
         "sampledValue": [{"value": "4200", "measurand": "Energy.Active.Import.Register",
                           "unit": "Wh"}]}]},
    )  # fmt: skip
    await call(
        charger, "StopTransaction",
        {"transactionId": tx, "meterStop": 8500, "timestamp": at(1820), "reason": "Local",
         "idTag": tag},
    )  # fmt: skip
    await call(charger, *status(False, 1, "Available", 1821))
    return str(tx)


def _tx_event(event_type: str, seq: int, t: float, trigger: str, **extra: Any) -> dict[str, Any]:
    return {"eventType": event_type, "timestamp": at(t), "triggerReason": trigger, "seqNo": seq,
            **extra}  # fmt: skip


def _energy(t: float, wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": at(t), "sampledValue": [
        {"value": wh, "measurand": "Energy.Active.Import.Register"},
        {"value": 7400, "measurand": "Power.Active.Import"}]}]  # fmt: skip


async def session_v201(charger: RawCharger, tag: str, tx: str) -> None:
    """A whole 2.0.1 session: 500 Wh -> 12500 Wh over one hour."""
    await boot(charger, v201=True)
    await call(charger, *status(True, 1, "Available", 0))
    token = {"idToken": tag, "type": "ISO14443"}
    await call(charger, "Authorize", {"idToken": token})
    await call(charger, *status(True, 1, "Occupied", 10))
    info = {"transactionId": tx, "chargingState": "Charging"}
    evse = {"id": 1, "connectorId": 1}
    await call(charger, "TransactionEvent", _tx_event(
        "Started", 0, 20, "Authorized", transactionInfo=info, evse=evse, idToken=token,
        meterValue=_energy(20, 500)))  # fmt: skip
    await call(charger, "TransactionEvent", _tx_event(
        "Updated", 1, 1800, "MeterValuePeriodic", transactionInfo=info,
        meterValue=_energy(1800, 6500)))  # fmt: skip
    ended = {"transactionId": tx, "chargingState": "Idle", "stoppedReason": "Local"}
    await call(charger, "TransactionEvent", _tx_event(
        "Ended", 2, 3620, "StopAuthorized", transactionInfo=ended, idToken=token,
        meterValue=_energy(3620, 12500)))  # fmt: skip
    await call(charger, *status(True, 1, "Available", 3621))
