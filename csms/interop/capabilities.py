"""What a charger's configuration or device model says about its support (pure, no I/O).

Read from:

* 1.6 ``ChargingScheduleAllowedChargingRateUnit`` (GetConfiguration): a CSL of
  ``Current`` and/or ``Power``;
* 2.0.1 ``SmartChargingCtrlr.RateUnit`` (GetVariables or NotifyReport): a member
  list of ``A`` and/or ``W``;
* 2.0.1 ``TariffCostCtrlr`` ``Available[Cost]`` / ``Enabled[Cost]``: whether the
  station shows a running cost, i.e. takes CostUpdated. A station without the
  component (GetVariables answers ``UnknownComponent``) has no cost display.

Both spellings of the units are accepted in both versions (some 2.0.1 stations
answer with 1.6 words).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

V16_RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"
SMART_CHARGING_CTRLR = "SmartChargingCtrlr"
RATE_UNIT = "RateUnit"
TARIFF_COST_CTRLR = "TariffCostCtrlr"
COST_INSTANCE = "Cost"
COST_UPDATED = "CostUpdated"

_UNIT_WORDS = {"a": "A", "current": "A", "w": "W", "power": "W"}


@dataclass(frozen=True, slots=True)
class Learned:
    """What one answer or report told; None: it said nothing about that."""

    rate_units: frozenset[str] | None = None
    rate_units_source: str = ""
    cost_updated: bool | None = None  # False: the station does not take CostUpdated
    cost_detail: str = ""


def parse_rate_units(value: str | None) -> frozenset[str] | None:
    """``"Current,Power"`` / ``"A,W"`` / ``"W"`` -> {"A", "W"} / {"W"}; None if none known."""
    if not value:
        return None
    units = {_UNIT_WORDS.get(word.strip().lower()) for word in value.split(",")}
    units.discard(None)
    return frozenset(u for u in units if u is not None) or None


def from_v16_configuration(configuration_key: Iterable[Mapping[str, Any]] | None) -> Learned:
    """A 1.6 GetConfiguration answer's ``configurationKey`` list (snake_case or camelCase)."""
    for entry in configuration_key or ():
        if entry.get("key") == V16_RATE_UNIT_KEY:
            units = parse_rate_units(entry.get("value"))
            if units is not None:
                return Learned(rate_units=units, rate_units_source=V16_RATE_UNIT_KEY)
    return Learned()


def v201_probe() -> list[dict[str, Any]]:
    """The ``getVariableData`` of the GetVariables sent after a 2.0.1 boot."""
    cost = {"name": TARIFF_COST_CTRLR}
    return [
        {"component": {"name": SMART_CHARGING_CTRLR}, "variable": {"name": RATE_UNIT}},
        {"component": cost, "variable": {"name": "Available", "instance": COST_INSTANCE}},
        {"component": cost, "variable": {"name": "Enabled", "instance": COST_INSTANCE}},
    ]


def _cost_verdict(
    component_missing: bool, values: Mapping[str, str | None]
) -> tuple[bool | None, str]:
    if component_missing:
        return False, f"{TARIFF_COST_CTRLR}: UnknownComponent"
    for name in ("Available", "Enabled"):
        if (values.get(name) or "").strip().lower() == "false":
            return False, f"{TARIFF_COST_CTRLR}.{name}[{COST_INSTANCE}]=false"
    if (values.get("Enabled") or "").strip().lower() == "true":
        return True, f"{TARIFF_COST_CTRLR}.Enabled[{COST_INSTANCE}]=true"
    return None, ""


def _is_cost_variable(variable: Mapping[str, Any]) -> bool:
    # The spec names the instance; some stations leave it out.
    return variable.get("instance") in (None, COST_INSTANCE)


def from_v201_variables(results: Iterable[Mapping[str, Any]] | None) -> Learned:
    """A 2.0.1 GetVariables answer's ``getVariableResult`` list (snake_case keys)."""
    units: frozenset[str] | None = None
    cost_values: dict[str, str | None] = {}
    cost_missing = False
    for result in results or ():
        component = str(result.get("component", {}).get("name", ""))
        variable = result.get("variable", {})
        status = result.get("attribute_status")
        if component == SMART_CHARGING_CTRLR and variable.get("name") == RATE_UNIT:
            if status == "Accepted":
                units = parse_rate_units(result.get("attribute_value"))
        elif component == TARIFF_COST_CTRLR and _is_cost_variable(variable):
            if status == "UnknownComponent":
                cost_missing = True
            elif status == "Accepted":
                cost_values[str(variable.get("name"))] = result.get("attribute_value")
    cost, detail = _cost_verdict(cost_missing, cost_values)
    return Learned(
        rate_units=units,
        rate_units_source=f"{SMART_CHARGING_CTRLR}.{RATE_UNIT}" if units else "",
        cost_updated=cost,
        cost_detail=detail,
    )


def _actual(item: Mapping[str, Any]) -> str | None:
    for attribute in item.get("variable_attribute") or ():
        if attribute.get("type", "Actual") == "Actual":
            value = attribute.get("value")
            return None if value is None else str(value)
    return None


def from_v201_report(report_data: Iterable[Mapping[str, Any]] | None) -> Learned:
    """One NotifyReport's ``reportData`` (snake_case keys), e.g. of a full base report."""
    units: frozenset[str] | None = None
    cost_values: dict[str, str | None] = {}
    for item in report_data or ():
        component = str(item.get("component", {}).get("name", ""))
        variable = item.get("variable", {})
        if component == SMART_CHARGING_CTRLR and variable.get("name") == RATE_UNIT:
            units = parse_rate_units(_actual(item)) or units
        elif component == TARIFF_COST_CTRLR and _is_cost_variable(variable):
            cost_values[str(variable.get("name"))] = _actual(item)
    cost, detail = _cost_verdict(False, cost_values)
    return Learned(
        rate_units=units,
        rate_units_source=f"{SMART_CHARGING_CTRLR}.{RATE_UNIT}" if units else "",
        cost_updated=cost,
        cost_detail=detail,
    )
