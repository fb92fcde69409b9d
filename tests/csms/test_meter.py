"""Meter values of both versions become the same normalised samples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.exceptions import PropertyConstraintViolationError

from csms.events import MeterSample
from csms.meter import energy_register, parse_timestamp, samples_from_v16, samples_from_v201

T = "2026-02-01T12:00:00Z"
MOMENT = datetime(2026, 2, 1, 12, tzinfo=UTC)


def test_v16_units_are_normalised_and_defaults_applied() -> None:
    samples = samples_from_v16(
        [
            {
                "timestamp": T,
                "sampled_value": [
                    {"value": "12.5", "unit": "kWh"},  # default measurand: the import register
                    {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": "230.1", "measurand": "Voltage", "phase": "L1-N"},
                    {
                        "value": "21",
                        "measurand": "Temperature",
                        "unit": "Celcius",
                        "location": "Body",
                    },
                    {"value": "80", "measurand": "SoC", "location": "EV"},
                    {"value": "ab12", "format": "SignedData"},
                ],
            }
        ]
    )
    assert [(s.measurand, s.value, s.unit) for s in samples] == [
        ("Energy.Active.Import.Register", 12500.0, "Wh"),
        ("Power.Active.Import", 7400.0, "W"),
        ("Voltage", 230.1, "V"),
        ("Temperature", 21.0, "Celsius"),
        ("SoC", 80.0, "Percent"),
    ]
    assert samples[2].phase == "L1-N" and samples[0].sampled_at == MOMENT


def test_v201_multiplier_is_a_power_of_ten() -> None:
    samples = samples_from_v201(
        [
            {
                "timestamp": T,
                "sampled_value": [
                    {"value": 1.5, "unit_of_measure": {"unit": "Wh", "multiplier": 3}},
                    {
                        "value": 16,
                        "measurand": "Current.Import",
                        "phase": "L3",
                        "context": "Sample.Periodic",
                    },
                    {
                        "value": 2,
                        "measurand": "Power.Active.Import",
                        "unit_of_measure": {"unit": "kW", "multiplier": 1},
                    },
                ],
            }
        ]
    )
    assert [(s.value, s.unit) for s in samples] == [(1500.0, "Wh"), (16.0, "A"), (20000.0, "W")]
    assert samples[1].context == "Sample.Periodic"


def test_energy_register_ignores_phases_and_other_measurands() -> None:
    samples = samples_from_v16(
        [
            {
                "timestamp": "2026-02-01T12:10:00Z",
                "sampled_value": [{"value": "20"}, {"value": "5", "phase": "L1"}],
            },
            {
                "timestamp": T,
                "sampled_value": [
                    {"value": "10"},
                    {"value": "3", "measurand": "Power.Active.Import"},
                ],
            },
        ]
    )
    assert [s.value for s in energy_register(samples)] == [10.0, 20.0]


def test_timestamps() -> None:
    assert parse_timestamp("2026-02-01T12:00:00.123+01:00").utcoffset() is not None
    assert parse_timestamp("2026-02-01T12:00:00") == MOMENT  # no offset: UTC
    with pytest.raises(PropertyConstraintViolationError):
        parse_timestamp("01/02/2026")
    with pytest.raises(PropertyConstraintViolationError):
        samples_from_v16([{"timestamp": T, "sampled_value": [{"value": "twelve"}]}])


_OMITTED = ("context", "measurand", "location", "phase")


def _spec_defaults(samples: tuple[MeterSample, ...]) -> list[tuple[str | None, ...]]:
    return [(s.context, s.measurand, s.location, s.phase, s.unit) for s in samples]


def test_v16_omitted_fields_get_the_spec_defaults() -> None:
    # 1.6 SampledValue: context Sample.Periodic, format Raw, measurand
    # Energy.Active.Import.Register, location Outlet, unit Wh (energy), no phase = overall.
    samples = samples_from_v16([{"timestamp": T, "sampled_value": [{"value": "1234"}]}])
    assert _spec_defaults(samples) == [
        ("Sample.Periodic", "Energy.Active.Import.Register", "Outlet", None, "Wh")
    ]
    assert samples[0].value == 1234.0  # format Raw: the value is the number itself


def test_v201_omitted_fields_get_the_spec_defaults() -> None:
    # 2.0.1 SampledValueType: the same defaults; unitOfMeasure absent = Wh, multiplier 0.
    samples = samples_from_v201([{"timestamp": T, "sampled_value": [{"value": 1234}]}])
    assert _spec_defaults(samples) == [
        ("Sample.Periodic", "Energy.Active.Import.Register", "Outlet", None, "Wh")
    ]
    assert samples[0].value == 1234.0


@pytest.mark.parametrize("parse", [samples_from_v16, samples_from_v201])
def test_fields_that_are_given_are_kept(parse: Any) -> None:
    given = {
        "context": "Transaction.End",
        "measurand": "Current.Import",
        "location": "EV",
        "phase": "L2",
    }
    value: object = "7" if parse is samples_from_v16 else 7
    samples = parse([{"timestamp": T, "sampled_value": [{"value": value, **given}]}])
    assert {k: getattr(samples[0], k) for k in _OMITTED} == given
    assert samples[0].unit == "A"  # not the energy default
