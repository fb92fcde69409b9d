"""Every profile the CSMS sends is unambiguous and in a unit the charger takes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.events import Protocol
from csms.interop.profiles import (
    NOMINAL_VOLTAGE_V,
    AmbiguousProfile,
    carries_profile,
    fit_profile,
)
from smart_charging import profiles as load_manager
from smart_charging.allocation import NOMINAL_VOLTAGE

NOW = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
W_ONLY = frozenset({"W"})
A_ONLY = frozenset({"A"})


def _v16(kind: str = "Absolute", unit: str = "A", **extra: Any) -> Any:
    schedule = {"charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 0, "limit": 16.0}]}  # fmt: skip
    schedule.update(extra.pop("schedule", {}))
    return call16.SetChargingProfile(
        connector_id=0,
        cs_charging_profiles={"charging_profile_id": 1, "stack_level": 0,
                              "charging_profile_purpose": "ChargePointMaxProfile",
                              "charging_profile_kind": kind, "charging_schedule": schedule,
                              **extra},
    )  # fmt: skip


def _v201(kind: str = "Absolute", unit: str = "W", periods: list[dict[str, Any]] | None = None,
          **extra: Any) -> Any:  # fmt: skip
    schedule = {
        "id": 1,
        "charging_rate_unit": unit,
        "charging_schedule_period": periods or [{"start_period": 0, "limit": 7400.0}],
    }
    schedule.update(extra.pop("schedule", {}))
    return call201.SetChargingProfile(
        evse_id=0,
        charging_profile={"id": 1, "stack_level": 0,
                          "charging_profile_purpose": "ChargingStationMaxProfile",
                          "charging_profile_kind": kind, "charging_schedule": [schedule],
                          **extra},
    )  # fmt: skip


def _schedules(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, call16.SetChargingProfile):
        return [payload.cs_charging_profiles["charging_schedule"]]
    return list(payload.charging_profile["charging_schedule"])


def _kind(payload: Any) -> str:
    profile = getattr(payload, "cs_charging_profiles", None) or payload.charging_profile
    return str(profile["charging_profile_kind"])


def test_the_reported_profile_gets_a_start() -> None:
    # The interop report's exact profile: Absolute, no startSchedule.
    sent = _v201()
    fitted = fit_profile(sent, None, NOW)
    assert _schedules(fitted)[0]["start_schedule"] == "2026-12-05T11:00:00.000Z"
    assert "start_schedule" not in _schedules(sent)[0]  # the original is left as it was
    fitted16 = fit_profile(_v16(), None, NOW)
    assert _schedules(fitted16)[0]["start_schedule"] == "2026-12-05T11:00:00.000Z"


def test_a_given_start_is_kept() -> None:
    payload = _v16(schedule={"start_schedule": "2026-12-01T00:00:00Z"})
    assert _schedules(fit_profile(payload, None, NOW))[0]["start_schedule"] == (
        "2026-12-01T00:00:00Z"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_v16("Recurring", recurrency_kind="Daily"), "Recurring profile needs"),
        (_v16("Recurring", schedule={"start_schedule": "2026-12-01T00:00:00Z"}), "Recurring"),
        (_v201("Relative", schedule={"start_schedule": "2026-12-01T00:00:00Z"}), "Relative"),
        (_v201("Absolute", recurrency_kind="Daily"), "recurrencyKind is only"),
    ],
)
def test_what_the_spec_gives_no_meaning_is_refused(payload: Any, message: str) -> None:
    with pytest.raises(AmbiguousProfile, match=message):
        fit_profile(payload, None, NOW)


def test_recurring_and_relative_as_the_spec_defines_pass() -> None:
    recurring = _v16("Recurring", recurrency_kind="Daily",
                     schedule={"start_schedule": "2026-12-01T00:00:00Z"})  # fmt: skip
    relative = _v201("Relative")
    assert fit_profile(recurring, None, NOW) == recurring
    assert fit_profile(relative, None, NOW) == relative


def test_a_w_only_charger_gets_w_with_phases_and_nominal_voltage() -> None:
    periods = [
        {"start_period": 0, "limit": 16.0, "number_phases": 1},
        {"start_period": 600, "limit": 10.0},
    ]  # the second has no numberPhases: 3
    payload = _v201("Relative", unit="A", periods=periods, schedule={"min_charging_rate": 6.0})
    [schedule] = _schedules(fit_profile(payload, W_ONLY, NOW))
    assert schedule["charging_rate_unit"] == "W"
    assert [p["limit"] for p in schedule["charging_schedule_period"]] == [3680.0, 6900.0]
    assert schedule["min_charging_rate"] == 1380.0  # 6 A x 1 phase (the first period's)
    assert [p.get("number_phases") for p in schedule["charging_schedule_period"]] == [1, None]


def test_an_a_only_charger_gets_a_never_above_what_was_asked() -> None:
    payload = _v16(unit="W", schedule={"charging_schedule_period": [
        {"start_period": 0, "limit": 11000.0, "number_phases": 3}]})  # fmt: skip
    [schedule] = _schedules(fit_profile(payload, A_ONLY, NOW))
    assert schedule["charging_rate_unit"] == "A"
    limit = schedule["charging_schedule_period"][0]["limit"]
    assert limit == 15.9  # 15.94 A rounded down
    assert limit * 3 * NOMINAL_VOLTAGE_V <= 11000.0


@pytest.mark.parametrize("units", [None, frozenset({"A", "W"}), A_ONLY])
def test_a_unit_the_charger_takes_or_unknown_units_are_left_alone(
    units: frozenset[str] | None,
) -> None:
    payload = _v16("Relative", unit="A")
    assert fit_profile(payload, units, NOW) == payload


def test_remote_start_with_a_profile_is_fitted_too() -> None:
    start = call201.RequestStartTransaction(
        id_token={"id_token": "T", "type": "Central"}, remote_start_id=1,
        charging_profile=_v201(unit="A").charging_profile,
    )  # fmt: skip
    assert carries_profile(start)
    fitted = fit_profile(start, W_ONLY, NOW)
    [schedule] = fitted.charging_profile["charging_schedule"]
    assert schedule["charging_rate_unit"] == "W" and "start_schedule" in schedule
    plain = call201.RequestStartTransaction(id_token={"id_token": "T", "type": "Central"},
                                            remote_start_id=2)  # fmt: skip
    assert not carries_profile(plain) and fit_profile(plain, W_ONLY, NOW) is plain
    reset = call16.Reset(type="Soft")
    assert fit_profile(reset, W_ONLY, NOW) is reset


def _load_manager_profiles(protocol: Protocol) -> list[Any]:
    # Time of use is one site-wide plan now: each profile holds the current quarter hour's
    # limit only (smart_charging/tou_plan.py), so the load manager sends no multi-period one.
    return [
        load_manager.tx_profile(protocol, 1, "42", 16.0, 3),
        load_manager.tx_profile(protocol, 2, "43", 32.0, 1),
        load_manager.max_profile(protocol, 32.0, 3, NOW),
        load_manager.default_profile(protocol, 0.0, 3),
    ]


@pytest.mark.parametrize("protocol", list(Protocol))
def test_the_load_manager_never_builds_an_absolute_profile_without_start(
    protocol: Protocol,
) -> None:
    built = _load_manager_profiles(protocol)
    kinds = [_kind(p) for p in built]
    assert kinds == ["Relative", "Relative", "Absolute", "Relative"]
    for payload in built:
        for schedule in _schedules(payload):
            assert bool(schedule.get("start_schedule")) == (_kind(payload) == "Absolute")
        assert fit_profile(payload, None, NOW) == payload  # nothing to complete or refuse


@pytest.mark.parametrize("protocol", list(Protocol))
def test_the_load_managers_profiles_reach_a_w_only_charger_in_w(protocol: Protocol) -> None:
    tx, single_phase, maximum, default = (
        fit_profile(p, W_ONLY, NOW, NOMINAL_VOLTAGE) for p in _load_manager_profiles(protocol)
    )
    for payload in (tx, single_phase, maximum, default):
        assert {s["charging_rate_unit"] for s in _schedules(payload)} == {"W"}
    assert _schedules(tx)[0]["charging_schedule_period"][0]["limit"] == 16.0 * 3 * 230
    assert _schedules(single_phase)[0]["charging_schedule_period"][0]["limit"] == 32.0 * 230
    assert _schedules(maximum)[0]["charging_schedule_period"][0]["limit"] == 22080.0


def test_the_conversion_uses_the_smart_charging_models_voltage() -> None:
    assert NOMINAL_VOLTAGE_V == NOMINAL_VOLTAGE
