"""The limit a session's draw is checked against: what it was told, as on the charger."""

from __future__ import annotations

from typing import Any

from csms.monitoring.rules_engine import ChargingLimits


def _set(limits: ChargingLimits, purpose: str, limit: float, evse: int = 0, tx: Any = None) -> None:
    payload = {"status": "Accepted", "limit_a": limit, "evse_id": evse, "purpose": purpose,
               "transaction_id": tx}  # fmt: skip
    limits.limit_set("CP", payload)


def test_a_session_is_checked_against_its_txprofile_not_a_0_a_default() -> None:
    limits = ChargingLimits()
    _set(limits, "ChargePointMaxProfile", 32.0)
    _set(limits, "TxDefaultProfile", 0.0)  # new sessions wait for their TxProfile
    assert limits.limit_of("CP", 1) == 32.0  # no TxProfile yet: only the charger's maximum
    _set(limits, "TxProfile", 16.0, evse=1, tx="T1")
    _set(limits, "TxDefaultProfile", 0.0)  # idle chargers' default lowered again: no matter
    assert limits.limit_of("CP", 1) == 16.0
    limits.transaction_ended("CP", "T1")
    assert limits.limit_of("CP", 1) == 32.0


def test_a_default_above_0_a_limits_a_session_without_txprofile_and_the_max_caps_all() -> None:
    limits = ChargingLimits()
    _set(limits, "TxDefaultProfile", 8.0)
    assert limits.limit_of("CP", 2) == 8.0
    _set(limits, "TxProfile", 20.0, evse=2, tx="T2")
    _set(limits, "ChargingStationMaxProfile", 10.0)
    assert limits.limit_of("CP", 2) == 10.0
    assert ChargingLimits().limit_of("CP", 1) is None


def test_a_txprofile_recorded_after_its_session_ended_does_not_limit_the_next_one() -> None:
    limits = ChargingLimits()
    _set(limits, "TxDefaultProfile", 16.0)
    _set(limits, "TxProfile", 32.0, evse=1, tx="T1")
    limits.transaction_ended("CP", "T1")
    _set(limits, "TxProfile", 0.0, evse=1, tx="T1")  # sent while T1 was stopping
    assert limits.limit_of("CP", 1) == 16.0  # the next session: the default, not T1's 0 A
    _set(limits, "TxProfile", 0.0, evse=1, tx=2)  # 1.6 ids come as numbers too
    limits.transaction_ended("CP", "2")
    assert limits.limit_of("CP", 1) == 16.0
