"""Turn OCPP meter values of either version into typed :class:`MeterSample` s.

Values are normalised to base units (Wh, W, var, varh, A, V) so that the rest
of the system never has to know whether a charger reported kWh or Wh, or used
2.0.1's ``multiplier``.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from ocpp.exceptions import PropertyConstraintViolationError

from csms.events import MeterSample
from csms.slots import slot_setters

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


# The instants a timestamp may name (docs/reliability.md): a charger whose clock
# was never set says 1970 or 2000, which is kept; year 1 or 9999 cannot be moved
# to UTC or have an interval added, and no charger means them.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# No meter reads 10**15 of anything (a PWh, a PW); beyond it energy sums overflow.
MAX_METER_VALUE = 1e15


def parse_timestamp(raw: str, field: str = "timestamp") -> datetime:
    """Parse an OCPP date-time; one without an offset is taken as UTC (OCPP mandates UTC)."""
    try:
        parsed = datetime.fromisoformat(raw)
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        in_range = EARLIEST <= parsed.astimezone(UTC) < LATEST
    except (TypeError, ValueError, OverflowError):
        raise PropertyConstraintViolationError(
            details={"cause": f"{field} is not an RFC 3339 date-time: {raw!r}"}
        ) from None
    if not in_range:
        raise PropertyConstraintViolationError(
            details={"cause": f"{field} is outside {EARLIEST.year}-{LATEST.year - 1}: {raw!r}"}
        )
    return parsed


def meter_number(value: float, field: str) -> float:
    """``value`` if a meter can have read it: finite and below :data:`MAX_METER_VALUE`."""
    if not math.isfinite(value) or abs(value) > MAX_METER_VALUE:
        raise PropertyConstraintViolationError(
            details={"cause": f"{field} {value!r} is not a meter reading (beyond 1e15)"}
        )
    return value


def readable_time(raw: str, rejected: list[str]) -> datetime:
    """``raw`` parsed, or -- noted in ``rejected`` -- the time it arrived, for an end."""
    try:
        return parse_timestamp(raw)
    except PropertyConstraintViolationError as error:
        rejected.append(str(error.details.get("cause")))
        return datetime.now(UTC)


def readable_meter(value: float, field: str, rejected: list[str]) -> float | None:
    """``value`` as a reading, or None -- noted in ``rejected`` -- if no meter reads it."""
    try:
        return meter_number(float(value), field)
    except PropertyConstraintViolationError as error:
        rejected.append(str(error.details.get("cause")))
        return None


@functools.lru_cache(maxsize=256)  # the schemas allow ~25 measurands; per sample, not per scan
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


# A sample's slots, set directly: the frozen dataclass's __init__ sets each field through
# object.__setattr__, 2.4 us a sample against 0.5 (eight samples a meter value, most of
# what a fleet sends: docs/profiling.md, "The frame path"). A field added to MeterSample
# must be added here: checked at import.
_new_sample = MeterSample.__new__
_set_sampled_at, _set_measurand, _set_value, _set_unit, _set_phase, _set_context, _set_location = (
    slot_setters(
        MeterSample, ("sampled_at", "measurand", "value", "unit", "phase", "context", "location")
    )
)


def new_sample(
    sampled_at: datetime,
    measurand: str,
    value: float,
    unit: str | None,
    phase: str | None,
    context: str | None,
    location: str | None,
) -> MeterSample:
    """``MeterSample(...)`` with every field given, without the frozen ``__init__``."""
    sample = _new_sample(MeterSample)
    _set_sampled_at(sample, sampled_at)
    _set_measurand(sample, measurand)
    _set_value(sample, value)
    _set_unit(sample, unit)
    _set_phase(sample, phase)
    _set_context(sample, context)
    _set_location(sample, location)
    return sample


def _samples(
    meter_values: Iterable[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any], str], tuple[float, str | None] | None],
    rejected: list[str] | None = None,
) -> tuple[MeterSample, ...]:
    """Samples of either version; ``read`` gives (value, unit) of a sampled value, None: skip.

    With ``rejected``, a sample that cannot be read is left out and why is appended
    there, instead of refusing the whole message (a transaction's end is stored anyway).
    """
    samples: list[MeterSample] = []
    for meter_value in meter_values:
        try:
            sampled_at = parse_timestamp(meter_value["timestamp"], "meterValue.timestamp")
        except PropertyConstraintViolationError as error:
            if rejected is None:
                raise
            rejected.append(str(error.details.get("cause")))
            continue
        for sv in meter_value.get("sampled_value", ()):
            get = sv.get
            measurand = get("measurand") or DEFAULT_MEASURAND
            try:
                reading = read(sv, measurand)
                if reading is None:
                    continue
                value, unit = _normalise(*reading, measurand)
                meter_number(value, "sampledValue.value")
            except PropertyConstraintViolationError as error:
                if rejected is None:
                    raise
                rejected.append(str(error.details.get("cause")))
                continue
            samples.append(
                new_sample(
                    sampled_at,
                    measurand,
                    value,
                    unit,
                    get("phase"),
                    get("context") or DEFAULT_CONTEXT,
                    get("location") or DEFAULT_LOCATION,
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
    try:
        return float(sv["value"]) * (10.0**multiplier), unit_of_measure.get("unit")
    except OverflowError:
        raise PropertyConstraintViolationError(
            details={"cause": f"sampledValue {sv['value']!r} x 10^{multiplier} overflows"}
        ) from None


def samples_from_v16(
    meter_values: Iterable[Mapping[str, Any]], rejected: list[str] | None = None
) -> tuple[MeterSample, ...]:
    """Parse 1.6 ``meterValue`` entries (snake_case keys, as the ocpp library passes them).

    Values are strings in 1.6; signed values (``format: SignedData``) are skipped.
    """
    return _samples(meter_values, _read_v16, rejected)


def samples_from_v201(
    meter_values: Iterable[Mapping[str, Any]], rejected: list[str] | None = None
) -> tuple[MeterSample, ...]:
    """Parse 2.0.1 ``meterValue`` entries; ``unitOfMeasure.multiplier`` is a power of ten."""
    return _samples(meter_values, _read_v201, rejected)


_sampled_at = operator.attrgetter("sampled_at")


def earliest(samples: tuple[MeterSample, ...]) -> datetime | None:
    """When the earliest of ``samples`` was taken; None if there are none."""
    return min(map(_sampled_at, samples)) if samples else None


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
