"""Delivered energy from the meter register, with the readings billing refuses to trust.

Only the energy register (Energy.Active.Import.Register, in Wh) is billed,
never power x time. Readings are walked in time order; each step between two
readings bills the register's advance, except:

* **rounding** -- the register falls by at most :data:`ROUNDING_TOLERANCE_WH`:
  the lower value is taken as true (the step takes that much off), no flag;
* **backwards** -- the register falls by more, to at least half its last
  value: the step bills nothing and later readings only bill what rises above
  the highest value seen, so a glitch is never billed twice;
* **reset** -- the register falls to less than half its last value (a meter
  restarted from zero): the new reading counts from zero, because a fresh
  register shows what it measured since it restarted;
* **jump** -- the step implies more power than the connector can deliver
  (:data:`JUMP_TOLERANCE` x its maximum): the step bills nothing.

Each case sets a flag on the record so an operator can look at it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

# Two readings of one register may differ by its resolution for the same energy
# (1.6 meterStop is whole Wh, samples are often rounded kWh): a drop this small is
# rounding, corrects the energy billed so far and is not flagged.
ROUNDING_TOLERANCE_WH = Decimal(10)

# A step may imply up to this factor above the connector's maximum power before
# it is called a jump: sample timestamps are whole seconds and meters lag.
JUMP_TOLERANCE = Decimal("1.25")


class MeterFlag(enum.StrEnum):
    BACKWARDS = "meter_backwards"
    RESET = "meter_reset"
    JUMP = "meter_jump"
    NO_DATA = "no_meter_data"  # fewer than two register readings: nothing to bill


@dataclass(frozen=True, slots=True)
class Reading:
    """One energy register reading, in Wh."""

    at: datetime
    wh: Decimal


@dataclass(frozen=True, slots=True)
class EnergyStep:
    """Energy billed between two consecutive readings (negative only for a rounding drop)."""

    start: datetime
    end: datetime
    wh: Decimal


@dataclass(frozen=True, slots=True)
class DeliveredEnergy:
    steps: tuple[EnergyStep, ...]
    flags: frozenset[MeterFlag]
    meter_start_wh: Decimal | None  # first reading
    meter_stop_wh: Decimal | None  # last reading

    @property
    def wh(self) -> Decimal:
        return sum((s.wh for s in self.steps), Decimal(0))


def _ordered(readings: Sequence[Reading]) -> list[Reading]:
    """Time order; the same reading reported twice (e.g. a sample and meterStop) once.

    Readings of one instant keep the order they are given in: the caller puts the
    stop reading, the session's last word, last (:mod:`billing.usage`).
    """
    unique = dict.fromkeys((r.at, r.wh) for r in readings)
    return [Reading(at, wh) for at, wh in sorted(unique, key=lambda k: k[0])]


def delivered_energy(readings: Sequence[Reading], max_power_w: Decimal | None) -> DeliveredEnergy:
    """What the register readings show was delivered, step by step, and what looked wrong."""
    ordered = _ordered(readings)
    if len(ordered) < 2:
        first = ordered[0].wh if ordered else None
        return DeliveredEnergy((), frozenset({MeterFlag.NO_DATA}), first, first)
    flags: set[MeterFlag] = set()
    steps: list[EnergyStep] = []
    previous = ordered[0]
    high_water = previous.wh  # highest register value billed up to
    # A jump is judged over the time since the last reading of an earlier instant,
    # with what was billed since then: zero seconds between two readings of one
    # instant neither excuse a jump nor make a rounding difference one.
    instant_start, billed_this_instant = previous.at, Decimal(0)
    for reading in ordered[1:]:
        if reading.at != previous.at:
            instant_start, billed_this_instant = previous.at, Decimal(0)
        drop = previous.wh - reading.wh
        if drop > 0 and reading.wh < previous.wh / 2:
            flags.add(MeterFlag.RESET)
            high_water = Decimal(0)
        elif drop > ROUNDING_TOLERANCE_WH:
            flags.add(MeterFlag.BACKWARDS)
        elif drop > 0 and high_water == previous.wh:
            # Rounding, not a fault: the lower value is as true as the higher one.
            high_water = reading.wh
            steps.append(EnergyStep(previous.at, reading.at, -drop))
            previous = reading
            continue
        billed = max(Decimal(0), reading.wh - high_water)
        if billed > 0 and max_power_w is not None:
            seconds = Decimal((reading.at - instant_start).total_seconds())
            if (billed + billed_this_instant) * 3600 > max_power_w * JUMP_TOLERANCE * seconds:
                flags.add(MeterFlag.JUMP)
                billed = Decimal(0)
        billed_this_instant += billed
        steps.append(EnergyStep(previous.at, reading.at, billed))
        high_water = max(high_water, reading.wh)
        previous = reading
    return DeliveredEnergy(tuple(steps), frozenset(flags), ordered[0].wh, ordered[-1].wh)
