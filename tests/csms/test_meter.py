"""Meter values of both versions become the same normalised samples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ocpp.exceptions import PropertyConstraintViolationError

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
