"""The SetChargingProfile requests of the load manager, for OCPP 1.6 and 2.0.1.

Ids, stack levels and units, the same for both versions:

=====================  ==========================  ===========  ========================
profile                id                          stack level  scope
=====================  ==========================  ===========  ========================
TxDefaultProfile       ``DEFAULT_PROFILE_ID`` 7100  0            connector/EVSE 0 (all)
TxProfile              ``TX_PROFILE_ID`` + EVSE     1            one EVSE, one transaction
=====================  ==========================  ===========  ========================

Every schedule is ``Relative`` (from the start of the transaction), in
``A`` per line with ``numberPhases`` set, and has one period starting at 0
with no duration: the limit holds until the next profile replaces it (same id,
so a charger replaces rather than stacks). The TxDefaultProfile is the safe
fallback a charger applies to a new session before the load manager has
planned it, and to every new session while the CSMS is unreachable
(``fallback_current_a`` of the site, 0 A by default: a new session waits for
its TxProfile). A TxProfile names its transaction (1.6 ``transactionId``, an
integer; 2.0.1 ``transactionId``), so it ends with it.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.events import Protocol

DEFAULT_PROFILE_ID = 7100
TX_PROFILE_ID = 7200  # + evse_id: one id per EVSE, replaced in place
DEFAULT_STACK_LEVEL = 0
TX_STACK_LEVEL = 1
RATE_UNIT = "A"


def _period(limit_a: float, phases: int) -> dict[str, Any]:
    return {"start_period": 0, "limit": round(limit_a, 1), "number_phases": phases}


def _v16_transaction_id(transaction_id: str) -> int | str:
    # 1.6 transaction ids are integers (the CSMS assigned them); keep anything else as is.
    return int(transaction_id) if transaction_id.lstrip("-").isdigit() else transaction_id


def tx_profile(
    protocol: Protocol, evse_id: int, transaction_id: str, limit_a: float, phases: int
) -> Any:
    """SetChargingProfile limiting one transaction to ``limit_a`` per line."""
    profile_id = TX_PROFILE_ID + evse_id
    if protocol is Protocol.V16:
        return call16.SetChargingProfile(
            connector_id=evse_id,
            cs_charging_profiles={
                "charging_profile_id": profile_id,
                "transaction_id": _v16_transaction_id(transaction_id),
                "stack_level": TX_STACK_LEVEL,
                "charging_profile_purpose": "TxProfile",
                "charging_profile_kind": "Relative",
                "charging_schedule": {
                    "charging_rate_unit": RATE_UNIT,
                    "charging_schedule_period": [_period(limit_a, phases)],
                },
            },
        )
    return call201.SetChargingProfile(
        evse_id=evse_id,
        charging_profile={
            "id": profile_id,
            "stack_level": TX_STACK_LEVEL,
            "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative",
            "transaction_id": transaction_id,
            "charging_schedule": [
                {
                    "id": profile_id,
                    "charging_rate_unit": RATE_UNIT,
                    "charging_schedule_period": [_period(limit_a, phases)],
                }
            ],
        },
    )


def default_profile(protocol: Protocol, limit_a: float, phases: int) -> Any:
    """SetChargingProfile: the TxDefaultProfile for every EVSE of a charger."""
    period = _period(limit_a, phases)
    if protocol is Protocol.V16:
        return call16.SetChargingProfile(
            connector_id=0,
            cs_charging_profiles={
                "charging_profile_id": DEFAULT_PROFILE_ID,
                "stack_level": DEFAULT_STACK_LEVEL,
                "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Relative",
                "charging_schedule": {
                    "charging_rate_unit": RATE_UNIT,
                    "charging_schedule_period": [period],
                },
            },
        )
    return call201.SetChargingProfile(
        evse_id=0,
        charging_profile={
            "id": DEFAULT_PROFILE_ID,
            "stack_level": DEFAULT_STACK_LEVEL,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": [
                {
                    "id": DEFAULT_PROFILE_ID,
                    "charging_rate_unit": RATE_UNIT,
                    "charging_schedule_period": [period],
                }
            ],
        },
    )
