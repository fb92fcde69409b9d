"""What chargers' configuration keys, GetVariables answers and reports say (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from csms.interop import capabilities as cap


@pytest.mark.parametrize(
    ("value", "units"),
    [
        ("Current,Power", {"A", "W"}),
        ("Power", {"W"}),
        ("Current", {"A"}),
        ("A,W", {"A", "W"}),
        (" W ", {"W"}),
        ("Watts", None),
        ("", None),
        (None, None),
    ],
)
def test_rate_units_in_either_spelling(value: str | None, units: set[str] | None) -> None:
    assert cap.parse_rate_units(value) == (frozenset(units) if units else None)


def test_v16_configuration() -> None:
    keys = [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"},
    ]
    learned = cap.from_v16_configuration(keys)
    assert learned.rate_units == {"W"}
    assert learned.rate_units_source == "ChargingScheduleAllowedChargingRateUnit"
    assert cap.from_v16_configuration(None) == cap.Learned()  # key unknown: nothing learned


def _result(component: str, variable: str, status: str, value: str | None = None,
            instance: str | None = None) -> dict[str, Any]:  # fmt: skip
    var: dict[str, Any] = {"name": variable}
    if instance:
        var["instance"] = instance
    data: dict[str, Any] = {"component": {"name": component}, "variable": var,
                            "attribute_status": status}  # fmt: skip
    if value is not None:
        data["attribute_value"] = value
    return data


def test_v201_station_without_a_cost_controller() -> None:
    learned = cap.from_v201_variables(
        [
            _result("SmartChargingCtrlr", "RateUnit", "Accepted", "W"),
            _result("TariffCostCtrlr", "Available", "UnknownComponent", instance="Cost"),
            _result("TariffCostCtrlr", "Enabled", "UnknownComponent", instance="Cost"),
        ]
    )
    assert learned.rate_units == {"W"}
    assert learned.rate_units_source == "SmartChargingCtrlr.RateUnit"
    assert learned.cost_updated is False
    assert learned.cost_detail == "TariffCostCtrlr: UnknownComponent"


@pytest.mark.parametrize(
    ("available", "enabled", "verdict"),
    [
        ("true", "true", True),
        ("false", "true", False),
        ("true", "false", False),
        ("true", None, None),  # Enabled not readable: not known
        (None, "TRUE", True),
    ],
)
def test_v201_cost_controller_variables(
    available: str | None, enabled: str | None, verdict: bool | None
) -> None:
    results = [
        _result("TariffCostCtrlr", name, "Accepted" if value else "UnknownVariable", value, "Cost")
        for name, value in (("Available", available), ("Enabled", enabled))
    ]
    assert cap.from_v201_variables(results).cost_updated is verdict


def test_v201_rejected_or_tariff_instance_says_nothing() -> None:
    learned = cap.from_v201_variables(
        [
            _result("SmartChargingCtrlr", "RateUnit", "Rejected"),
            _result("TariffCostCtrlr", "Enabled", "Accepted", "false", instance="Tariff"),
        ]
    )
    assert learned == cap.Learned()


def test_probe_asks_for_rate_unit_and_cost_controller() -> None:
    asked = {(d["component"]["name"], d["variable"]["name"], d["variable"].get("instance"))
             for d in cap.v201_probe()}  # fmt: skip
    assert asked == {
        ("SmartChargingCtrlr", "RateUnit", None),
        ("TariffCostCtrlr", "Available", "Cost"),
        ("TariffCostCtrlr", "Enabled", "Cost"),
    }


def test_v201_report() -> None:
    report = [
        {
            "component": {"name": "SmartChargingCtrlr"},
            "variable": {"name": "RateUnit"},
            "variable_attribute": [{"type": "Actual", "value": "A"}],
            "variable_characteristics": {"data_type": "MemberList", "values_list": "A,W"},
        },
        {
            "component": {"name": "TariffCostCtrlr"},
            "variable": {"name": "Enabled", "instance": "Cost"},
            "variable_attribute": [{"type": "Target", "value": "true"}, {"value": "false"}],
        },
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
    ]
    learned = cap.from_v201_report(report)
    assert learned.rate_units == {"A"}  # the Actual value, not the list of possible ones
    assert learned.cost_updated is False
    assert learned.cost_detail == "TariffCostCtrlr.Enabled[Cost]=false"
    assert cap.from_v201_report(report[2:]) == cap.Learned()
