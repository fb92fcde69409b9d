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


def test_an_end_drops_only_its_own_txprofile_on_its_own_charger() -> None:
    limits = ChargingLimits()
    _set(limits, "TxProfile", 16.0, evse=1, tx="T1")
    _set(limits, "TxProfile", 10.0, evse=2, tx="T2")
    limits.limit_set("OTHER", {"status": "Accepted", "limit_a": 12.0, "evse_id": 1,
                               "purpose": "TxProfile", "transaction_id": "T1"})  # fmt: skip
    limits.transaction_ended("CP", "T9")  # not a transaction with a profile: nothing goes
    assert (limits.limit_of("CP", 1), limits.limit_of("CP", 2)) == (16.0, 10.0)
    limits.transaction_ended("CP", "T1")
    assert (limits.limit_of("CP", 1), limits.limit_of("CP", 2)) == (None, 10.0)
    assert limits.limit_of("OTHER", 1) == 12.0  # the same transaction id on another charger
    _set(limits, "TxProfile", 14.0, evse=1, tx="T3")  # the EVSE's next session
    limits.transaction_ended("CP", "T2")
    limits.transaction_ended("OTHER", "T1")
    assert (limits.limit_of("CP", 1), limits.limit_of("CP", 2)) == (14.0, None)
    assert limits.limit_of("OTHER", 1) is None
    limits.transaction_ended("CP", "T3")
    assert limits.limit_of("CP", 1) is None
    # A charger whose last limit ended (it is forgotten: limit_of's fast path) gets new ones.
    limits.limit_set("OTHER", {"status": "Accepted", "limit_a": 6.0, "evse_id": 0,
                               "purpose": "TxDefaultProfile"})  # fmt: skip
    assert limits.limit_of("OTHER", 1) == 6.0
