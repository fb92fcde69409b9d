"""What a benchmark charger says: a realistic OCPP message mix for both versions.

Each charger repeats a session cycle of :data:`CYCLE` calls::

    StatusNotification (Preparing / Occupied)
    start       1.6 StartTransaction / 2.0.1 TransactionEvent Started (idToken BENCH)
    StatusNotification (Charging / Occupied)
    22 meter values inside the transaction, a Heartbeat halfway
                1.6 MeterValues / 2.0.1 TransactionEvent Updated (seqNo + 1),
                8 samples each: register, power, current and voltage per phase
    stop        1.6 StopTransaction / 2.0.1 TransactionEvent Ended
    StatusNotification (Available)

so of every 28 calls 22 are meter values (79 %), 3 status notifications, one
heartbeat and one start/stop pair. A fleet's chargers start the cycle at random
points (after their own start), so the mix is steady from the first second.

The CSMS's own calls to a charger (its post-boot capability probe, commands)
get a minimal valid answer from :func:`answer_server_call`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SAMPLES_PER_METER_VALUE = 8
ID_TOKEN = "BENCH"  # the benchmark adds it to the CSMS as Accepted
METER_VALUES_PER_SESSION = 22
# Positions in the cycle.
_PREPARING, _START, _CHARGING = 0, 1, 2
_FIRST_METER = 3
_HEARTBEAT = _FIRST_METER + METER_VALUES_PER_SESSION // 2
_STOP = _FIRST_METER + METER_VALUES_PER_SESSION + 1  # one slot taken by the heartbeat
_AVAILABLE = _STOP + 1
CYCLE = _AVAILABLE + 1

# The kind of each call, as the report groups latencies.
KINDS = ("meter", "status", "heartbeat", "start", "stop", "boot", "sync")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Call:
    kind: str  # one of KINDS
    action: str
    payload: dict[str, Any]
    samples: int = 0  # meter samples in the payload (what the CSMS must store)


def boot(v201: bool) -> Call:
    if v201:
        return Call(
            "boot",
            "BootNotification",
            {"chargingStation": {"model": "B", "vendorName": "Bench"}, "reason": "PowerUp"},
        )
    return Call("boot", "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B"})


def _sampled_values(wh: float, v201: bool) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = [
        {"measurand": "Energy.Active.Import.Register", "value": wh},
        {"measurand": "Power.Active.Import", "value": 11000},
    ]
    for phase in ("L1", "L2", "L3"):
        values.append({"measurand": "Current.Import", "phase": phase, "value": 16.0})
        values.append({"measurand": "Voltage", "phase": f"{phase}-N", "value": 230.0})
    if not v201:  # 1.6 sends values as strings
        for value in values:
            value["value"] = str(value["value"])
    return values


class ChargerScript:
    """One charger's next call, from its place in the session cycle; no I/O."""

    def __init__(self, charger_id: str, v201: bool) -> None:
        self.charger_id, self.v201 = charger_id, v201
        self.position = 0
        self.sessions = 0
        self.transaction_id: int | str | None = None  # 1.6: the CSMS's, 2.0.1: ours
        self.seq_no = 0
        self.wh = 0.0

    def skip_to_random_meter_value(self, rng: random.Random) -> None:
        """After the start (inside the transaction): continue at a random meter value."""
        assert self.position > _START, "start the transaction first"
        self.position = rng.randrange(_FIRST_METER, _STOP)

    def next_call(self) -> Call:
        position = self.position
        self.position = (position + 1) % CYCLE
        if position == _PREPARING:
            return self._status("Preparing", "Occupied")
        if position == _START:
            return self._start()
        if position == _CHARGING:
            return self._status("Charging", "Occupied")
        if position == _HEARTBEAT:
            return Call("heartbeat", "Heartbeat", {})
        if position == _STOP:
            return self._stop()
        if position == _AVAILABLE:
            return self._status("Available", "Available")
        return self._meter_value()

    def on_answer(self, call: Call, payload: dict[str, Any]) -> None:
        """Learn what the answer tells: the 1.6 transaction id."""
        if call.kind == "start" and not self.v201:
            self.transaction_id = payload.get("transactionId")

    def _status(self, status16: str, status201: str) -> Call:
        if self.v201:
            payload: dict[str, Any] = {
                "timestamp": now(),
                "connectorStatus": status201,
                "evseId": 1,
                "connectorId": 1,
            }
        else:
            payload = {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": status16,
                "timestamp": now(),
            }
        return Call("status", "StatusNotification", payload)

    def _start(self) -> Call:
        self.sessions += 1
        self.seq_no = 0
        if not self.v201:
            self.transaction_id = None  # until the answer
            return Call(
                "start",
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": ID_TOKEN,
                    "meterStart": int(self.wh),
                    "timestamp": now(),
                },
            )
        self.transaction_id = f"{self.charger_id}-{self.sessions}"
        return Call(
            "start",
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": now(),
                "triggerReason": "Authorized",
                "seqNo": self.seq_no,
                "transactionInfo": {"transactionId": self.transaction_id},
                "idToken": {"idToken": ID_TOKEN, "type": "ISO14443"},
                "evse": {"id": 1, "connectorId": 1},
            },
        )

    def _meter_value(self) -> Call:
        self.wh += 30.0
        meter = [{"timestamp": now(), "sampledValue": _sampled_values(self.wh, self.v201)}]
        if not self.v201:
            payload: dict[str, Any] = {"connectorId": 1, "meterValue": meter}
            if isinstance(self.transaction_id, int):
                payload["transactionId"] = self.transaction_id
            return Call("meter", "MeterValues", payload, SAMPLES_PER_METER_VALUE)
        self.seq_no += 1
        return Call(
            "meter",
            "TransactionEvent",
            {
                "eventType": "Updated",
                "timestamp": now(),
                "triggerReason": "MeterValuePeriodic",
                "seqNo": self.seq_no,
                "transactionInfo": {"transactionId": self.transaction_id},
                "meterValue": meter,
            },
            SAMPLES_PER_METER_VALUE,
        )

    def _stop(self) -> Call:
        if not self.v201:
            payload: dict[str, Any] = {
                "meterStop": int(self.wh),
                "timestamp": now(),
                "transactionId": self.transaction_id if self.transaction_id is not None else 0,
                "reason": "EVDisconnected",
            }
            return Call("stop", "StopTransaction", payload)
        self.seq_no += 1
        return Call(
            "stop",
            "TransactionEvent",
            {
                "eventType": "Ended",
                "timestamp": now(),
                "triggerReason": "EVCommunicationLost",
                "seqNo": self.seq_no,
                "transactionInfo": {
                    "transactionId": self.transaction_id,
                    "stoppedReason": "EVDisconnected",
                },
            },
        )


# CSMS calls whose answer has no field (2.0.1 CostUpdated: the running cost of a session).
_EMPTY_ANSWERS = frozenset({"CostUpdated"})


def answer_server_call(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid answer to a call of the CSMS (a charger that knows little)."""
    if action == "GetConfiguration":  # 1.6: no key known
        return {"configurationKey": [], "unknownKey": payload.get("key", [])}
    if action == "GetVariables":  # 2.0.1: no variable known
        return {
            "getVariableResult": [
                {
                    "attributeStatus": "UnknownVariable",
                    "component": item.get("component", {}),
                    "variable": item.get("variable", {}),
                }
                for item in payload.get("getVariableData", [])
            ]
        }
    if action == "GetTransactionStatus":  # 2.0.1: nothing queued, the session goes on
        return {"ongoingIndicator": True, "messagesInQueue": False}
    if action == "GetLocalListVersion":  # 1.6: no local list
        return {"listVersion": 0}
    if action in _EMPTY_ANSWERS:
        return {}
    return {"status": "Accepted"}  # valid for most commands of both versions
