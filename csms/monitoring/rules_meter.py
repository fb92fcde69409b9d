"""Fault-detection rules over meter samples: voltage, current, temperature, energy register.

Samples of one message are grouped by timestamp into :class:`Reading` s (one
per instant: register, power, the highest phase current, the voltages, the
temperature); :func:`evaluate` runs every meter rule over one reading of one
connector, given the connector's :class:`MeterState`, and returns the new
state and the observations. Like every rule (:mod:`csms.monitoring.rules`),
no I/O and no clock: times are the charger's sample timestamps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.events import MeterSample
from csms.meter import ENERGY_REGISTER
from csms.monitoring.alerts import Severity
from csms.monitoring.rules import (
    OVER_LIMIT,
    OVERCURRENT,
    REGISTER_BACKWARDS,
    REGISTER_JUMP,
    STUCK_METER,
    TEMPERATURE_HIGH,
    TEMPERATURE_RISING,
    VOLTAGE_OUT_OF_BAND,
    Clear,
    Finding,
    Observation,
    Thresholds,
    seconds,
)
from csms.slots import slot_setters

_SQRT3 = math.sqrt(3)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a connector's meter said at one instant (None: not sampled)."""

    at: datetime
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None  # the highest phase current
    voltages: tuple[tuple[str | None, float], ...] = ()  # (phase, volts)
    temperature_c: float | None = None


class _Instant:
    """Readings being collected for one timestamp."""

    __slots__ = ("current_a", "energy_wh", "phase_power_w", "power_w", "temperature", "voltages")

    def __init__(self) -> None:
        self.energy_wh: float | None = None
        self.power_w: float | None = None
        self.phase_power_w: float | None = None
        self.current_a: float | None = None
        self.voltages: list[tuple[str | None, float]] = []
        self.temperature: float | None = None


def readings(samples: Iterable[MeterSample]) -> list[Reading]:
    """Group samples by timestamp into readings, in time order."""
    by_time: dict[datetime, _Instant] = {}
    at: datetime | None = None
    slot = _Instant()  # replaced at the first sample
    for s in samples:
        if s.sampled_at != at:  # a message's samples mostly share one timestamp
            at = s.sampled_at
            found = by_time.get(at)
            if found is None:
                found = by_time[at] = _Instant()
            slot = found
        m = s.measurand
        value = s.value
        if m == ENERGY_REGISTER:
            if s.phase is None and s.location in (None, "Outlet"):
                slot.energy_wh = value
        elif m == "Power.Active.Import":
            if s.phase is None:
                slot.power_w = value
            else:  # per-phase values only: their sum is the power
                slot.phase_power_w = (slot.phase_power_w or 0.0) + value
        elif m == "Current.Import":
            current = slot.current_a
            if current is None or value > current:
                slot.current_a = value
        elif m == "Voltage":
            slot.voltages.append((s.phase, value))
        elif m == "Temperature" and s.unit in (None, "Celsius"):
            t = slot.temperature
            if t is None or value > t:
                slot.temperature = value
    if len(by_time) == 1:
        assert at is not None
        return [_reading(at, slot)]
    return [_reading(at, slot) for at, slot in sorted(by_time.items())]


def _reading(at: datetime, slot: _Instant) -> Reading:
    """The Reading of one instant, built by setting its slots (see :func:`_state`)."""
    reading = _new_reading(Reading)
    _set_at(reading, at)
    _set_energy_wh(reading, slot.energy_wh)
    _set_power_w(reading, slot.power_w if slot.power_w is not None else slot.phase_power_w)
    _set_current_a(reading, slot.current_a)
    _set_voltages(reading, tuple(slot.voltages))
    _set_temperature_c(reading, slot.temperature)
    return reading


_new_reading = Reading.__new__
_set_at, _set_energy_wh, _set_power_w, _set_current_a, _set_voltages, _set_temperature_c = (
    slot_setters(Reading, ("at", "energy_wh", "power_w", "current_a", "voltages", "temperature_c"))
)


@dataclass(frozen=True, slots=True)
class MeterState:
    """What the meter rules remember about one connector between readings."""

    last_at: datetime | None = None  # newest reading seen (older ones are late: skipped)
    voltage_bad_since: datetime | None = None
    current_bad_since: datetime | None = None
    limit_bad_since: datetime | None = None
    temperatures: tuple[tuple[datetime, float], ...] = ()
    register: tuple[datetime, float] | None = None  # last register reading
    flat_since: datetime | None = None  # register unchanged while drawing power since
    expected_wh: float = 0.0  # energy the power readings imply since flat_since
    power: tuple[datetime, float] | None = None  # last power reading


@functools.lru_cache(maxsize=8192)
def _clear(rule: str, evse: tuple[int | None, int | None]) -> Clear:
    """The same (frozen) Clear each time: a reading of a healthy connector makes six of
    them, and building one cost as much as the cache's look-up twice over."""
    return Clear(rule, *evse)


# A new MeterState per reading (every meter value of the fleet passes here, on the lease
# holder): built by setting its slots, as its frozen dataclass __init__ sets each of its
# nine fields with object.__setattr__ (~4 us of a reading's ~20). Checked at import.
_new_state = MeterState.__new__
(
    _set_last_at, _set_voltage_since, _set_current_since, _set_limit_since, _set_temperatures,
    _set_register, _set_flat_since, _set_expected_wh, _set_power,
) = slot_setters(MeterState, (
    "last_at", "voltage_bad_since", "current_bad_since", "limit_bad_since", "temperatures",
    "register", "flat_since", "expected_wh", "power",
))  # fmt: skip


def _state(
    last_at: datetime | None,
    voltage_bad_since: datetime | None,
    current_bad_since: datetime | None,
    limit_bad_since: datetime | None,
    temperatures: tuple[tuple[datetime, float], ...],
    register: tuple[datetime, float] | None,
    flat_since: datetime | None,
    expected_wh: float,
    power: tuple[datetime, float] | None,
) -> MeterState:
    """MeterState(...) with every field, in declaration order."""
    state = _new_state(MeterState)
    _set_last_at(state, last_at)
    _set_voltage_since(state, voltage_bad_since)
    _set_current_since(state, current_bad_since)
    _set_limit_since(state, limit_bad_since)
    _set_temperatures(state, temperatures)
    _set_register(state, register)
    _set_flat_since(state, flat_since)
    _set_expected_wh(state, expected_wh)
    _set_power(state, power)
    return state


def _held(since: datetime | None, at: datetime, bad: bool) -> datetime | None:
    return (since or at) if bad else None


def _nominal(phase: str | None, th: Thresholds) -> float:
    """Line-to-line phases ("L1-L2") are sqrt(3) times the line-to-neutral nominal."""
    if phase and "-" in phase and not phase.endswith("-N"):
        return th.nominal_voltage_v * _SQRT3
    return th.nominal_voltage_v


def evaluate(
    state: MeterState,
    evse: tuple[int | None, int | None],
    reading: Reading,
    th: Thresholds,
    limit_a: float | None = None,
) -> tuple[MeterState, list[Observation]]:
    """Run every meter rule over one reading of one connector.

    ``limit_a`` is the per-phase current the smart-charging limit allows now,
    when it is known; without it only the connector's rating is checked.
    """
    if state.last_at is not None and reading.at <= state.last_at:
        return state, []  # a late or repeated reading: the rules have moved past it
    obs: list[Observation] = []
    at = reading.at
    voltage_since, current_since, limit_since = (
        state.voltage_bad_since,
        state.current_bad_since,
        state.limit_bad_since,
    )
    temperatures = state.temperatures
    register, flat_since, expected_wh, power = (
        state.register,
        state.flat_since,
        state.expected_wh,
        state.power,
    )

    if reading.voltages:
        worst_phase, worst_v, worst_dev = None, 0.0, 0.0
        for phase, volts in reading.voltages:
            nominal = _nominal(phase, th)
            deviation = (volts - nominal) / nominal
            if abs(deviation) >= abs(worst_dev):
                worst_phase, worst_v, worst_dev = phase, volts, deviation
        bad = abs(worst_dev) > th.voltage_tolerance
        voltage_since = _held(voltage_since, at, bad)
        if voltage_since is not None and seconds(at, voltage_since) >= th.voltage_hold_s:
            obs.append(
                Finding(
                    VOLTAGE_OUT_OF_BAND,
                    Severity.WARNING,
                    *evse,
                    f"voltage {worst_v:.0f} V on {worst_phase or 'the supply'} is "
                    f"{worst_dev * 100:+.0f} % from nominal (allowed "
                    f"+-{th.voltage_tolerance * 100:g} %) for {seconds(at, voltage_since):.0f} s",
                    {"at": at.isoformat(), "phase": worst_phase, "voltage_v": worst_v},
                )
            )
        elif not bad:
            obs.append(_clear(VOLTAGE_OUT_OF_BAND, evse))

    if reading.current_a is not None:
        amps = reading.current_a
        rating = th.max_current_a * (1 + th.current_margin) + th.current_margin_a
        current_since = _held(current_since, at, amps > rating)
        if current_since is not None and seconds(at, current_since) >= th.current_hold_s:
            obs.append(
                Finding(
                    OVERCURRENT,
                    Severity.CRITICAL,
                    *evse,
                    f"current {amps:.1f} A above the connector's {th.max_current_a:g} A rating "
                    f"for {seconds(at, current_since):.0f} s",
                    {"at": at.isoformat(), "current_a": amps, "rating_a": th.max_current_a},
                )
            )
        elif current_since is None:
            obs.append(_clear(OVERCURRENT, evse))
        if limit_a is not None:
            allowed = limit_a * (1 + th.current_margin) + th.current_margin_a
            limit_since = _held(limit_since, at, amps > allowed)
            if limit_since is not None and seconds(at, limit_since) >= th.current_hold_s:
                obs.append(
                    Finding(
                        OVER_LIMIT,
                        Severity.WARNING,
                        *evse,
                        f"current {amps:.1f} A above the {limit_a:g} A charging limit "
                        f"for {seconds(at, limit_since):.0f} s",
                        {"at": at.isoformat(), "current_a": amps, "limit_a": limit_a},
                    )
                )
            elif limit_since is None:
                obs.append(_clear(OVER_LIMIT, evse))
        else:
            limit_since = None  # unknown limit: this half of the rule does not apply

    if reading.temperature_c is not None:
        celsius = reading.temperature_c
        window_start = at - timedelta(seconds=th.temperature_rise_window_s)
        temperatures = (*(t for t in temperatures if t[0] >= window_start), (at, celsius))
        if celsius > th.temperature_max_c:
            obs.append(
                Finding(
                    TEMPERATURE_HIGH,
                    Severity.CRITICAL,
                    *evse,
                    f"temperature {celsius:.0f} °C above {th.temperature_max_c:g} °C",
                    {"at": at.isoformat(), "temperature_c": celsius},
                )
            )
        else:
            obs.append(_clear(TEMPERATURE_HIGH, evse))
        coolest = min(c for _, c in temperatures)
        if celsius >= th.temperature_rise_floor_c and celsius - coolest >= th.temperature_rise_c:
            obs.append(
                Finding(
                    TEMPERATURE_RISING,
                    Severity.WARNING,
                    *evse,
                    f"temperature rose {celsius - coolest:.0f} °C to {celsius:.0f} °C within "
                    f"{th.temperature_rise_window_s / 60:g} min",
                    {"at": at.isoformat(), "temperature_c": celsius, "from_c": coolest},
                )
            )
        else:
            obs.append(_clear(TEMPERATURE_RISING, evse))

    # Power drawn over the whole interval since the previous reading: the lower
    # of its two ends (a register may rightly stay flat while power ramps up).
    interval_w: float | None = None
    if reading.power_w is not None:
        if power is not None:
            interval_w = min(power[1], reading.power_w)
        power = (at, reading.power_w)

    if reading.energy_wh is not None:
        wh = reading.energy_wh
        if register is not None:
            delta, dt = wh - register[1], seconds(at, register[0])
            deliverable = th.max_power_w * dt / 3600 * (1 + th.register_jump_margin)
            if delta < -th.register_backwards_wh:
                obs.append(
                    Finding(
                        REGISTER_BACKWARDS,
                        Severity.CRITICAL,
                        *evse,
                        f"energy register went backwards by {-delta:.0f} Wh",
                        {"at": at.isoformat(), "from_wh": register[1], "to_wh": wh},
                    )
                )
            elif delta > deliverable + th.register_slack_wh:
                obs.append(
                    Finding(
                        REGISTER_JUMP,
                        Severity.WARNING,
                        *evse,
                        f"energy register jumped {delta:.0f} Wh in {dt:.0f} s; the connector "
                        f"can deliver at most {th.max_power_w * dt / 3600:.0f} Wh",
                        {"at": at.isoformat(), "from_wh": register[1], "to_wh": wh, "dt_s": dt},
                    )
                )
            else:
                obs.append(_clear(REGISTER_BACKWARDS, evse))
                obs.append(_clear(REGISTER_JUMP, evse))
            if abs(delta) < 0.5 and interval_w is not None and interval_w >= th.stuck_min_power_w:
                if flat_since is None:
                    flat_since, expected_wh = register[0], 0.0
                expected_wh += interval_w * dt / 3600
            else:
                flat_since, expected_wh = None, 0.0
        register = (at, wh)
        if flat_since is not None:
            flat_for = seconds(at, flat_since)
            if flat_for >= th.stuck_hold_s and expected_wh >= th.stuck_min_expected_wh:
                obs.append(
                    Finding(
                        STUCK_METER,
                        Severity.WARNING,
                        *evse,
                        f"energy register stuck at {wh:.0f} Wh for {flat_for:.0f} s while "
                        f"drawing {reading.power_w or 0:.0f} W (~{expected_wh:.0f} Wh unbilled)",
                        {"at": at.isoformat(), "register_wh": wh, "power_w": reading.power_w},
                    )
                )
        else:
            obs.append(_clear(STUCK_METER, evse))

    state = _state(
        at,
        voltage_since,
        current_since,
        limit_since,
        temperatures,
        register,
        flat_since,
        expected_wh,
        power,
    )
    return state, obs


def idle(state: MeterState, evse: tuple[int | None, int | None]) -> tuple[MeterState, list[Clear]]:
    """The session on this connector ended: rules that need current flowing are clear."""
    cleared = [_clear(rule, evse) for rule in (OVERCURRENT, OVER_LIMIT, STUCK_METER)]
    return (
        MeterState(
            last_at=state.last_at,
            voltage_bad_since=state.voltage_bad_since,
            temperatures=state.temperatures,
            register=state.register,
            power=None,
        ),
        cleared,
    )
