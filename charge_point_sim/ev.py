"""Electric-vehicle model: how much power an EV takes, and what charging does to it.

Everything here is a pure function of its inputs so it can be unit tested
without a clock or a socket. The charger calls :func:`charge_step` once per
tick with the limit from its charging-profile stack; the EV decides the rest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime

VOLTAGE = 230.0
"""Nominal phase voltage (V) used for every A <-> W conversion in the simulator."""


@dataclass(frozen=True)
class EVSpec:
    """Static properties of one vehicle."""

    capacity_kwh: float = 60.0
    max_ac_kw: float = 11.0
    max_dc_kw: float = 50.0
    phases: int = 3
    taper_start_soc: float = 80.0
    """Above this state of charge (%) the battery management tapers power linearly."""
    min_taper_fraction: float = 0.05
    """Fraction of max power still accepted at 100 % SoC."""


@dataclass(frozen=True)
class EVState:
    """Dynamic state of one plugged-in vehicle during a session."""

    spec: EVSpec
    soc: float
    target_soc: float = 100.0
    departure: datetime | None = None

    def done(self, now: datetime | None = None) -> bool:
        """True when the EV wants to stop: target reached or departure time passed."""
        if self.soc >= self.target_soc - 1e-9:
            return True
        return self.departure is not None and now is not None and now >= self.departure


def ev_max_power_w(spec: EVSpec, soc: float, dc: bool = False) -> float:
    """Power (W) the EV accepts at ``soc``: flat, then a linear taper near full."""
    peak = (spec.max_dc_kw if dc else spec.max_ac_kw) * 1000.0
    if soc >= 100.0:
        return 0.0
    if soc <= spec.taper_start_soc:
        return peak
    span = 100.0 - spec.taper_start_soc
    frac = 1.0 - (soc - spec.taper_start_soc) / span * (1.0 - spec.min_taper_fraction)
    return peak * frac


def charge_step(
    state: EVState, limit_w: float, dt_s: float, dc: bool = False
) -> tuple[EVState, float, float]:
    """Charge for ``dt_s`` seconds under ``limit_w``.

    Returns ``(new_state, power_w, energy_wh)``. The power is
    ``min(EV acceptance, limit)``; energy is clipped so the EV never overshoots
    its target SoC (the power reported is then the average over the step).
    """
    if dt_s <= 0 or state.done():
        return state, 0.0, 0.0
    power = max(0.0, min(ev_max_power_w(state.spec, state.soc, dc), limit_w))
    energy_wh = power * dt_s / 3600.0
    room_wh = (state.target_soc - state.soc) / 100.0 * state.spec.capacity_kwh * 1000.0
    if energy_wh > room_wh:
        energy_wh = max(0.0, room_wh)
        power = energy_wh * 3600.0 / dt_s
    soc = state.soc + energy_wh / (state.spec.capacity_kwh * 1000.0) * 100.0
    soc = min(soc, state.target_soc)
    return replace(state, soc=soc), power, energy_wh


def current_per_phase_a(power_w: float, phases: int) -> float:
    """Line current (A) for ``power_w`` spread over ``phases`` phases at 230 V."""
    return power_w / (VOLTAGE * max(1, phases))


def random_ev(rng: random.Random, departure: datetime | None = None) -> EVState:
    """A plausible random EV for the arrival process (seeded ``rng`` => reproducible)."""
    capacity = rng.choice([40.0, 58.0, 64.0, 77.0, 82.0, 100.0])
    phases = rng.choice([1, 3, 3, 3])
    max_ac = rng.choice([3.7, 7.4]) if phases == 1 else rng.choice([11.0, 11.0, 22.0])
    spec = EVSpec(capacity_kwh=capacity, max_ac_kw=max_ac, max_dc_kw=150.0, phases=phases)
    soc = rng.uniform(10.0, 60.0)
    target = rng.choice([80.0, 90.0, 100.0])
    return EVState(spec=spec, soc=round(soc, 1), target_soc=target, departure=departure)
