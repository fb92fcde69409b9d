"""The SetChargingProfile requests of the load manager, for OCPP 1.6 and 2.0.1.

Ids, stack levels and units, the same for both versions:

=========================  ==========================  ===========  ======================
profile                    id                          stack level  scope
=========================  ==========================  ===========  ======================
ChargePointMaxProfile [1]  ``MAX_PROFILE_ID`` 7000      0            the whole charger
TxDefaultProfile           ``DEFAULT_PROFILE_ID`` 7100  0            connector/EVSE 0 (all)
TxProfile                  ``TX_PROFILE_ID`` + EVSE     1            one EVSE, one transaction
=========================  ==========================  ===========  ======================

[1] ChargingStationMaxProfile in 2.0.1.

Every schedule is in ``A`` per line with ``numberPhases`` set. The
TxDefaultProfile and a plain TxProfile are ``Relative`` (from the start of the
transaction) with one period starting at 0 and no duration: the limit holds
until the next profile replaces it (same id, so a charger replaces rather
than stacks); time of use too (:mod:`smart_charging.tou_plan`) sends only the
current quarter hour's limit, and a new one when the next quarter hour starts,
so a charger never raises its draw on its own clock. The ChargePointMaxProfile
is sent at boot with the charger's configured ``max_current_a`` (its share of
the site as the operator sized it), ``Absolute`` from that moment with one
endless period (it belongs to no transaction, so ``Relative`` would have
nothing to be relative to): a charger that loses the CSMS never goes above its
configured maximum, whatever it was told last. The TxDefaultProfile is the safe
fallback a charger applies to a new session before the load manager has
planned it, and to every new session while the CSMS is unreachable
(the charger's failsafe share of the site, :mod:`smart_charging.failsafe`, so
the site stays under its limit if every charger falls back at once; or the
site's fixed ``fallback_current_a``, e.g. 0 A: a new session waits for its
TxProfile). A TxProfile names its transaction (1.6 ``transactionId``, an
integer; 2.0.1 ``transactionId``), so it ends with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.events import Protocol

MAX_PROFILE_ID = 7000
DEFAULT_PROFILE_ID = 7100
TX_PROFILE_ID = 7200  # + evse_id: one id per EVSE, replaced in place
MAX_STACK_LEVEL = 0
DEFAULT_STACK_LEVEL = 0
TX_STACK_LEVEL = 1
RATE_UNIT = "A"
# An Absolute schedule starts this much before the CSMS's "now": a charger whose clock is
# behind ours still finds it in force at once.
CLOCK_SKEW_S = 60


def _period(limit_a: float, phases: int, start_s: int = 0) -> dict[str, Any]:
    return {"start_period": start_s, "limit": round(limit_a, 1), "number_phases": phases}


def _schedule(limit_a: float, phases: int) -> tuple[str, dict[str, Any]]:
    """The profile kind and the schedule's fields common to 1.6 and 2.0.1."""
    return "Relative", {
        "charging_rate_unit": RATE_UNIT,
        "charging_schedule_period": [_period(limit_a, phases)],
    }


def _v16_transaction_id(transaction_id: str) -> int | str:
    # 1.6 transaction ids are integers (the CSMS assigned them); keep anything else as is.
    return int(transaction_id) if transaction_id.lstrip("-").isdigit() else transaction_id


def tx_profile(
    protocol: Protocol,
    evse_id: int,
    transaction_id: str,
    limit_a: float,
    phases: int,
) -> Any:
    """SetChargingProfile limiting one transaction to ``limit_a`` per line."""
    profile_id = TX_PROFILE_ID + evse_id
    kind, schedule = _schedule(limit_a, phases)
    if protocol is Protocol.V16:
        return call16.SetChargingProfile(
            connector_id=evse_id,
            cs_charging_profiles={
                "charging_profile_id": profile_id,
                "transaction_id": _v16_transaction_id(transaction_id),
                "stack_level": TX_STACK_LEVEL,
                "charging_profile_purpose": "TxProfile",
                "charging_profile_kind": kind,
                "charging_schedule": schedule,
            },
        )
    return call201.SetChargingProfile(
        evse_id=evse_id,
        charging_profile={
            "id": profile_id,
            "stack_level": TX_STACK_LEVEL,
            "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": kind,
            "transaction_id": transaction_id,
            "charging_schedule": [{"id": profile_id, **schedule}],
        },
    )


def max_profile(protocol: Protocol, limit_a: float, phases: int, now: datetime) -> Any:
    """SetChargingProfile: the charger's own ceiling (ChargePointMaxProfile / 2.0.1 station max)."""
    schedule = {
        "start_schedule": (now - timedelta(seconds=CLOCK_SKEW_S)).isoformat(),
        "charging_rate_unit": RATE_UNIT,
        "charging_schedule_period": [_period(limit_a, phases)],
    }
    if protocol is Protocol.V16:
        return call16.SetChargingProfile(
            connector_id=0,
            cs_charging_profiles={
                "charging_profile_id": MAX_PROFILE_ID,
                "stack_level": MAX_STACK_LEVEL,
                "charging_profile_purpose": "ChargePointMaxProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": schedule,
            },
        )
    return call201.SetChargingProfile(
        evse_id=0,
        charging_profile={
            "id": MAX_PROFILE_ID,
            "stack_level": MAX_STACK_LEVEL,
            "charging_profile_purpose": "ChargingStationMaxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": MAX_PROFILE_ID, **schedule}],
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
