"""Render a version-neutral :class:`~charge_point_sim.model.Sample` as OCPP sampled values.

The measurands are the ones the issue asks for: energy register, power,
current per phase, voltage, SoC and temperature. OCPP 2.0.1 has no
Temperature measurand, so the 2.0.1 rendering leaves it out.
"""

from __future__ import annotations

from typing import Any

from charge_point_sim.clock import iso
from charge_point_sim.ev import VOLTAGE, current_per_phase_a
from charge_point_sim.model import Sample

_PHASES = ("L1", "L2", "L3")


def _values(sample: Sample) -> list[tuple[str, float, str, str | None, str]]:
    """(measurand, value, unit, phase, location) tuples common to both versions."""
    out: list[tuple[str, float, str, str | None, str]] = [
        ("Energy.Active.Import.Register", float(round(sample.energy_wh)), "Wh", None, "Outlet"),
        ("Power.Active.Import", round(sample.power_w, 1), "W", None, "Outlet"),
    ]
    amps = round(current_per_phase_a(sample.power_w, sample.phases), 1)
    for phase in _PHASES[: sample.phases]:
        out.append(("Current.Import", amps, "A", phase, "Outlet"))
    out.append(("Voltage", VOLTAGE, "V", "L1-N", "Outlet"))
    if sample.soc is not None:
        out.append(("SoC", round(sample.soc, 1), "Percent", None, "EV"))
    out.append(("Temperature", round(sample.temperature_c, 1), "Celsius", None, "Body"))
    return out


def meter_value_v16(sample: Sample) -> dict[str, Any]:
    """A 1.6 ``MeterValue`` (values are strings on the wire)."""
    values = []
    for measurand, value, unit, phase, location in _values(sample):
        text = str(int(value)) if measurand.startswith("Energy") else f"{value:.1f}"
        sv: dict[str, Any] = {
            "value": text,
            "context": sample.context,
            "measurand": measurand,
            "unit": unit,
            "location": location,
        }
        if phase is not None:
            sv["phase"] = phase
        values.append(sv)
    return {"timestamp": iso(sample.timestamp), "sampled_value": values}


def meter_value_v201(sample: Sample) -> dict[str, Any]:
    """A 2.0.1 ``MeterValueType`` (numeric values, ``unitOfMeasure``)."""
    values = []
    for measurand, value, unit, phase, location in _values(sample):
        if measurand == "Temperature":
            continue
        sv: dict[str, Any] = {
            "value": value,
            "context": sample.context,
            "measurand": measurand,
            "location": location,
            "unit_of_measure": {"unit": unit},
        }
        if phase is not None:
            sv["phase"] = phase
        values.append(sv)
    return {"timestamp": iso(sample.timestamp), "sampled_value": values}
