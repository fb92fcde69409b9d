"""Turn OCPP meter values of either version into typed :class:`MeterSample` s.

Values are normalised to base units (Wh, W, var, varh, A, V) so that the rest
of the system never has to know whether a charger reported kWh or Wh, or used
2.0.1's ``multiplier``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from ocpp.exceptions import PropertyConstraintViolationError

from csms.events import MeterSample

log = structlog.get_logger(__name__)

ENERGY_REGISTER = "Energy.Active.Import.Register"

# What a sampled value means when the charger leaves a field out -- the same in 1.6
# (SampledValue) and 2.0.1 (SampledValueType): stored explicitly, so a query never has
# to know that a null context is a periodic sample. No phase means the overall value
# (no default to apply); 1.6's format defaults to Raw (only SignedData is skipped);
# the unit's default is below (Wh for energy, as both specs mean it).
DEFAULT_MEASURAND = ENERGY_REGISTER
DEFAULT_CONTEXT = "Sample.Periodic"
DEFAULT_LOCATION = "Outlet"

# Unit spelling -> (base unit, factor to multiply by).
_UNIT_SCALE: dict[str, tuple[str, float]] = {
    "Wh": ("Wh", 1.0),
    "kWh": ("Wh", 1000.0),
    "varh": ("varh", 1.0),
    "kvarh": ("varh", 1000.0),
    "W": ("W", 1.0),
    "kW": ("W", 1000.0),
    "VA": ("VA", 1.0),
    "kVA": ("VA", 1000.0),
    "var": ("var", 1.0),
    "kvar": ("var", 1000.0),
    "A": ("A", 1.0),
    "V": ("V", 1.0),
    "K": ("K", 1.0),
    "Celcius": ("Celsius", 1.0),  # 1.6 spells it this way
    "Celsius": ("Celsius", 1.0),
    "Fahrenheit": ("Fahrenheit", 1.0),
    "Percent": ("Percent", 1.0),
    "Hz": ("Hz", 1.0),
}

# Unit a measurand is in when the charger leaves ``unit`` out. Both specs say Wh
# (1.6: "if the (default) measurand is an Energy type"; 2.0.1's unitOfMeasure.unit
# defaults to Wh), which only makes sense for energy measurands: the others get their
# natural unit, never a Wh that would be a wrong label on a current or a voltage.
_DEFAULT_UNIT_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("Energy.Reactive", "varh"),
    ("Energy", "Wh"),
    ("Power.Reactive", "var"),
    ("Power.Factor", ""),
    ("Power", "W"),
    ("Current", "A"),
    ("Voltage", "V"),
    ("SoC", "Percent"),
    ("Temperature", "Celsius"),
    ("Frequency", "Hz"),
    ("RPM", ""),
)


def parse_timestamp(raw: str, field: str = "timestamp") -> datetime:
    """Parse an OCPP date-time; one without an offset is taken as UTC (OCPP mandates UTC)."""
    try:
        parsed = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        raise PropertyConstraintViolationError(
            details={"cause": f"{field} is not an RFC 3339 date-time: {raw!r}"}
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _default_unit(measurand: str) -> str | None:
    for prefix, unit in _DEFAULT_UNIT_BY_PREFIX:
        if measurand.startswith(prefix):
            return unit or None
    return None


def _normalise(value: float, unit: str | None, measurand: str) -> tuple[float, str | None]:
    unit = unit or _default_unit(measurand)
    if unit is None:
        return value, None
    base, factor = _UNIT_SCALE.get(unit, (unit, 1.0))
    return value * factor, base


def _samples(
    meter_values: Iterable[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any], str], tuple[float, str | None] | None],
) -> tuple[MeterSample, ...]:
    """Samples of either version; ``read`` gives (value, unit) of a sampled value, None: skip."""
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        sampled_at = parse_timestamp(meter_value["timestamp"], "meterValue.timestamp")
        for sv in meter_value.get("sampled_value", ()):
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            reading = read(sv, measurand)
            if reading is None:
                continue
            value, unit = _normalise(*reading, measurand)
            samples.append(
                MeterSample(
                    sampled_at=sampled_at,
                    measurand=measurand,
                    value=value,
                    unit=unit,
                    phase=sv.get("phase"),
                    context=sv.get("context") or DEFAULT_CONTEXT,
                    location=sv.get("location") or DEFAULT_LOCATION,
                )
            )
    return tuple(samples)


def _read_v16(sv: Mapping[str, Any], measurand: str) -> tuple[float, str | None] | None:
    if sv.get("format") == "SignedData":
        log.info("meter.signed_value_skipped", measurand=measurand)
        return None
    try:
        return float(sv["value"]), sv.get("unit")
    except ValueError:
        raise PropertyConstraintViolationError(
            details={"cause": f"sampledValue.value is not a number: {sv['value']!r}"}
        ) from None


def _read_v201(sv: Mapping[str, Any], measurand: str) -> tuple[float, str | None]:
    unit_of_measure = sv.get("unit_of_measure") or {}
    multiplier = int(unit_of_measure.get("multiplier", 0))
    return float(sv["value"]) * (10.0**multiplier), unit_of_measure.get("unit")


def samples_from_v16(meter_values: Iterable[Mapping[str, Any]]) -> tuple[MeterSample, ...]:
    """Parse 1.6 ``meterValue`` entries (snake_case keys, as the ocpp library passes them).

    Values are strings in 1.6; signed values (``format: SignedData``) are skipped.
    """
    return _samples(meter_values, _read_v16)


def samples_from_v201(meter_values: Iterable[Mapping[str, Any]]) -> tuple[MeterSample, ...]:
    """Parse 2.0.1 ``meterValue`` entries; ``unitOfMeasure.multiplier`` is a power of ten."""
    return _samples(meter_values, _read_v201)


def energy_register(samples: Iterable[MeterSample]) -> list[MeterSample]:
    """The import energy register samples (whole-meter, not per phase), in time order."""
    return sorted(
        (
            s
            for s in samples
            if s.measurand == ENERGY_REGISTER and s.phase is None and s.location in (None, "Outlet")
        ),
        key=lambda s: s.sampled_at,
    )
