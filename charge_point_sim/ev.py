"""Electric-vehicle model: how much power an EV takes, and what charging does to it.

Everything here is a pure function of its inputs so it can be unit tested
without a clock or a socket. The charger calls :func:`charge_step` once per
tick with the limit from its charging-profile stack; the EV decides the rest,
as real cars do:

* **lag and ramp**: when the limit changes, the EV keeps drawing what it drew
  for ``response_delay_s`` seconds, then ramps towards the new target at
  ``max_ac_kw / ramp_s`` per second (both ways; IEC 61851-1 gives an EV 5 s to
  follow a lower pilot signal, so the defaults, 2 s + up to 3 s, stay inside
  it). During the lag it may draw *more* than the new limit - which is why a
  load manager must send decreases first and wait before it sends increases;
* **taper near full**: above ``taper_start_soc`` the acceptance falls linearly
  to ``min_taper_fraction`` of the maximum at 100 %;
* **full but plugged in**: with ``stays_plugged`` an EV that reached its target
  draws nothing (the charger reports SuspendedEV) until its departure;
* **departure at its own time**: the session ends at ``departure`` whatever
  the state of charge.
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
    response_delay_s: float = 2.0
    """Seconds the EV keeps its old draw after the limit changed (0 = follows at once)."""
    ramp_s: float = 3.0
    """Seconds a ramp from 0 to its full AC power takes (0 = jumps)."""


@dataclass(frozen=True)
class EVState:
    """Dynamic state of one plugged-in vehicle during a session."""

    spec: EVSpec
    soc: float
    target_soc: float = 100.0
    departure: datetime | None = None
    stays_plugged: bool = False  # full: stays until departure, drawing nothing
    power_w: float = 0.0  # what it draws now
    pilot_w: float | None = None  # the limit it last saw
    delay_left_s: float = 0.0  # before it starts following ``pilot_w``

    @property
    def full(self) -> bool:
        return self.soc >= self.target_soc - 1e-9

    def done(self, now: datetime | None = None) -> bool:
        """True when the EV leaves: departure time passed, or full (unless it stays plugged)."""
        if self.departure is not None and now is not None and now >= self.departure:
            return True
        return self.full and not self.stays_plugged


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
    """Charge for ``dt_s`` seconds; ``limit_w`` is the limit the charger applies *now*.

    Returns ``(new_state, power_w, energy_wh)``: the power drawn at the end of
    the step and the energy of the step. The step's energy is drawn under the
    limit the EV saw before (its pilot); a *new* limit is seen at the end of the
    step - the moment the charger applies it, which is when a charger steps its
    EVs (:meth:`charge_point_sim.sessions.SessionCharger.limits_changed`) - and
    is followed from then on, with the lag and ramp of the module docstring. (A
    new limit taken as seen at the start of the step made an EV follow it
    retroactively: one stepped every 30 s followed a new limit at once.) The
    first limit an EV sees (``pilot_w`` None) is the one it was plugged in under:
    followed from the start of the step. Energy is clipped so the EV never
    overshoots its target SoC; an EV full within the step draws nothing at its
    end (it says SuspendedEV at once).
    """
    spec = state.spec
    if state.pilot_w is None:
        state = replace(state, pilot_w=limit_w, delay_left_s=0.0)
    elif abs(limit_w - state.pilot_w) > 1e-6:
        before, power, energy = _follow(state, state.pilot_w, dt_s, dc)
        return replace(before, pilot_w=limit_w, delay_left_s=spec.response_delay_s), power, energy
    return _follow(state, limit_w, dt_s, dc)


def _follow(state: EVState, limit_w: float, dt_s: float, dc: bool) -> tuple[EVState, float, float]:
    """``dt_s`` seconds under an unchanged pilot ``limit_w`` (the rest of its lag, a ramp)."""
    if state.full:
        return replace(state, power_w=0.0), 0.0, 0.0
    if dt_s <= 0:
        return state, state.power_w, 0.0
    spec = state.spec
    delay = state.delay_left_s
    target = max(0.0, min(ev_max_power_w(spec, state.soc, dc), limit_w))
    waited = min(dt_s, delay)
    moving = dt_s - waited
    start = state.power_w
    peak = (spec.max_dc_kw if dc else spec.max_ac_kw) * 1000.0
    rate = peak / spec.ramp_s if spec.ramp_s > 0 else float("inf")
    gap = target - start
    ramp_time = abs(gap) / rate if rate != float("inf") else 0.0
    if moving <= 0:
        end, energy_ws = start, start * dt_s
    elif ramp_time <= moving:
        end = target
        ramping = (start + target) / 2 * ramp_time
        energy_ws = start * waited + ramping + target * (moving - ramp_time)
    else:
        end = start + (rate * moving if gap > 0 else -rate * moving)
        energy_ws = start * waited + (start + end) / 2 * moving
    energy_wh = max(0.0, energy_ws) / 3600.0
    power = max(0.0, end)
    room_wh = (state.target_soc - state.soc) / 100.0 * spec.capacity_kwh * 1000.0
    if energy_wh >= room_wh:  # full within the step: it stops drawing
        energy_wh, power, soc = max(0.0, room_wh), 0.0, state.target_soc
    else:
        soc = min(state.soc + energy_wh / (spec.capacity_kwh * 1000.0) * 100.0, state.target_soc)
    new = replace(state, soc=soc, power_w=power, delay_left_s=delay - waited)
    return new, power, energy_wh


def power_after(state: EVState, seconds: float) -> float:
    """What the EV draws ``seconds`` after its last step, under the pilot it saw last
    (its delay and ramp played out): its draw at any instant, between two steps."""
    if state.pilot_w is None:
        return state.power_w
    return _follow(state, state.pilot_w, max(0.0, seconds), False)[1]


def seconds_to_full(state: EVState) -> float | None:
    """When the EV reaches its target at what it draws now (None: it draws nothing).

    A charger steps the EV then, so it says SuspendedEV when it is full, not a tick later.
    """
    if state.full or state.power_w <= 0.0:
        return None
    room_wh = (state.target_soc - state.soc) / 100.0 * state.spec.capacity_kwh * 1000.0
    return max(0.0, room_wh) * 3600.0 / state.power_w


def current_per_phase_a(power_w: float, phases: int) -> float:
    """Line current (A) for ``power_w`` spread over ``phases`` phases at 230 V."""
    return power_w / (VOLTAGE * max(1, phases))


def random_ev(
    rng: random.Random, departure: datetime | None = None, stays_plugged: bool = False
) -> EVState:
    """A plausible random EV for the arrival process (seeded ``rng`` => reproducible)."""
    capacity = rng.choice([40.0, 58.0, 64.0, 77.0, 82.0, 100.0])
    phases = rng.choice([1, 3, 3, 3])
    max_ac = rng.choice([3.7, 7.4]) if phases == 1 else rng.choice([11.0, 11.0, 22.0])
    spec = EVSpec(capacity_kwh=capacity, max_ac_kw=max_ac, max_dc_kw=150.0, phases=phases)
    soc = rng.uniform(10.0, 60.0)
    target = rng.choice([80.0, 90.0, 100.0])
    return EVState(
        spec=spec,
        soc=round(soc, 1),
        target_soc=target,
        departure=departure,
        stays_plugged=stays_plugged and departure is not None,
    )
