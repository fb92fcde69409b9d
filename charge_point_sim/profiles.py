"""Charging-profile stack and composite schedule (OCPP 1.6 §3.13 / 2.0.1 K).

Profiles from both protocol versions are parsed into one version-neutral
:class:`Profile`, so the stacking rules are implemented (and tested) once:

* per purpose, the profile with the highest ``stackLevel`` that *has a period
  at that instant* wins (a higher level that has expired or not started yet
  falls through to the next one);
* a TxProfile for the running transaction overrides the TxDefaultProfile;
* the ChargePoint/ChargingStation max profile (and 2.0.1 external
  constraints) cap the result.

Limits are compared in watts (A x 230 V x phases) and converted back to the
unit a caller asks for. All functions here are pure; :class:`ProfileStack` is
a thin mutable container with the install/clear rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from charge_point_sim.clock import parse_iso
from charge_point_sim.ev import VOLTAGE

DEFAULT_PHASES = 3


class Purpose(StrEnum):
    """Version-neutral profile purpose."""

    MAX = "Max"
    EXTERNAL = "External"
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


_PURPOSES = {
    "ChargePointMaxProfile": Purpose.MAX,
    "ChargingStationMaxProfile": Purpose.MAX,
    "ChargingStationExternalConstraints": Purpose.EXTERNAL,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
_CYCLE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


@dataclass(frozen=True)
class Period:
    """One ``chargingSchedulePeriod``: ``start`` seconds after the schedule start."""

    start: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class Profile:
    """A charging profile in version-neutral form. ``evse_id`` 0 = whole station."""

    id: int
    stack_level: int
    purpose: Purpose
    kind: str
    unit: str
    periods: tuple[Period, ...]
    evse_id: int = 0
    start_schedule: datetime | None = None
    duration: int | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None


@dataclass(frozen=True)
class Limit:
    """A limit at one instant, normalised to watts plus the phase count it assumes.

    ``amps`` keeps an A limit as given: it caps the current on *each* line, so
    a single-phase EV under it draws at most ``amps`` on its one line.
    """

    watts: float
    phases: int
    amps: float | None = field(default=None, compare=False)

    def in_unit(self, unit: str) -> float:
        """Express the limit in ``"W"`` or ``"A"`` (per phase)."""
        if unit == "A":
            return round(self.watts / (VOLTAGE * self.phases), 1)
        return round(self.watts, 1)


def _opt_time(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) else None


def _parse(d: Mapping[str, Any], sched: Mapping[str, Any], evse_id: int) -> Profile:
    periods = tuple(
        Period(
            start=int(p["start_period"]),
            limit=float(p["limit"]),
            phases=int(p["number_phases"]) if p.get("number_phases") is not None else None,
        )
        for p in sched["charging_schedule_period"]
    )
    tx = d.get("transaction_id")
    return Profile(
        id=int(d.get("charging_profile_id", d.get("id", 0))),
        stack_level=int(d["stack_level"]),
        purpose=_PURPOSES[str(d["charging_profile_purpose"])],
        kind=str(d["charging_profile_kind"]),
        unit=str(sched["charging_rate_unit"]),
        periods=tuple(sorted(periods, key=lambda p: p.start)),
        evse_id=evse_id,
        start_schedule=_opt_time(sched.get("start_schedule")),
        duration=int(sched["duration"]) if sched.get("duration") is not None else None,
        recurrency=d.get("recurrency_kind"),
        valid_from=_opt_time(d.get("valid_from")),
        valid_to=_opt_time(d.get("valid_to")),
        transaction_id=str(tx) if tx is not None else None,
    )


def parse_v16(d: Mapping[str, Any], connector_id: int) -> Profile:
    """Parse a 1.6 ``csChargingProfiles`` (snake_case keys, as the ocpp library delivers)."""
    return _parse(d, d["charging_schedule"], connector_id)


def parse_v201(d: Mapping[str, Any], evse_id: int) -> Profile:
    """Parse a 2.0.1 ``chargingProfile``; only its first ``chargingSchedule`` is used."""
    return _parse(d, d["charging_schedule"][0], evse_id)


def schedule_start(p: Profile, t: datetime, relative_start: datetime) -> datetime:
    """Instant the profile's schedule starts, for evaluating it at ``t``."""
    if p.kind == "Relative":
        return relative_start
    base = p.start_schedule or p.valid_from or relative_start
    if p.kind == "Recurring" and p.recurrency in _CYCLE and t >= base:
        cycle = _CYCLE[p.recurrency]
        return base + cycle * ((t - base) // cycle)
    return base


def profile_limit(p: Profile, t: datetime, relative_start: datetime) -> Limit | None:
    """The limit ``p`` imposes at ``t``, or None if it has no period then."""
    if p.valid_from is not None and t < p.valid_from:
        return None
    if p.valid_to is not None and t >= p.valid_to:
        return None
    offset = (t - schedule_start(p, t, relative_start)).total_seconds()
    if offset < 0 or (p.duration is not None and offset >= p.duration):
        return None
    current: Period | None = None
    for period in p.periods:
        if period.start <= offset:
            current = period
    if current is None:
        return None
    phases = current.phases or DEFAULT_PHASES
    watts = current.limit if p.unit == "W" else current.limit * VOLTAGE * phases
    return Limit(watts=watts, phases=phases, amps=current.limit if p.unit == "A" else None)


@dataclass(frozen=True)
class TxContext:
    """The running transaction on an EVSE, which TxProfiles and Relative profiles need."""

    transaction_id: str
    started: datetime


def _applies(p: Profile, evse_id: int, tx: TxContext | None) -> bool:
    if p.purpose in (Purpose.MAX, Purpose.EXTERNAL):
        return p.evse_id == 0 or p.evse_id == evse_id
    if p.purpose == Purpose.TX_DEFAULT:
        return p.evse_id in (0, evse_id)
    return (
        tx is not None
        and p.evse_id == evse_id
        and (p.transaction_id is None or p.transaction_id == tx.transaction_id)
    )


def _winner(profiles: Iterable[Profile], evse_id: int, t: datetime, rel: datetime) -> Limit | None:
    # Highest stack level first; on a tie an EVSE-specific profile beats a station-wide one.
    ordered = sorted(profiles, key=lambda p: (p.stack_level, p.evse_id == evse_id), reverse=True)
    for p in ordered:
        limit = profile_limit(p, t, rel)
        if limit is not None:
            return limit
    return None


def limit_at(
    profiles: Iterable[Profile],
    evse_id: int,
    t: datetime,
    tx: TxContext | None = None,
    relative_start: datetime | None = None,
) -> Limit | None:
    """Composite limit on ``evse_id`` at instant ``t`` (None = unconstrained)."""
    rel = tx.started if tx is not None else (relative_start or t)
    mine = [p for p in profiles if _applies(p, evse_id, tx)]
    by = {purpose: [p for p in mine if p.purpose == purpose] for purpose in Purpose}
    tx_limit = _winner(by[Purpose.TX], evse_id, t, rel)
    if tx_limit is None:
        tx_limit = _winner(by[Purpose.TX_DEFAULT], evse_id, t, rel)
    caps = [
        _winner(by[Purpose.MAX], evse_id, t, rel),
        _winner(by[Purpose.EXTERNAL], evse_id, t, rel),
        tx_limit,
    ]
    present = [c for c in caps if c is not None]
    if not present:
        return None
    in_amps = [c.amps for c in present if c.amps is not None]
    if not in_amps:
        return min(present, key=lambda c: c.watts)
    # An A limit caps each line and numberPhases the lines in use, whatever the other
    # profiles say: 14 A on 3 phases under a 32 A single-phase maximum is 14 A on one line
    # (comparing their watts, 9.7 kW against 7.4 kW, would wrongly let the 32 A win).
    amps, phases = min(in_amps), min(c.phases for c in present)
    watts = min([c.watts for c in present if c.amps is None] + [amps * VOLTAGE * phases])
    return Limit(watts=watts, phases=phases, amps=amps)


def _breakpoints(p: Profile, start: datetime, end: datetime, rel: datetime) -> set[datetime]:
    """Instants in [start, end) where ``p``'s limit may change."""
    points: set[datetime] = set()
    for bound in (p.valid_from, p.valid_to):
        if bound is not None:
            points.add(bound)
    base = schedule_start(p, start, rel)
    cycle = _CYCLE.get(p.recurrency or "") if p.kind == "Recurring" else None
    while True:
        points.add(base)
        points.update(base + timedelta(seconds=q.start) for q in p.periods)
        if p.duration is not None:
            points.add(base + timedelta(seconds=p.duration))
        if cycle is None or base + cycle >= end:
            break
        base += cycle
    return {x for x in points if start <= x < end}


@dataclass(frozen=True)
class CompositePeriod:
    """One period of a composite schedule (offset in seconds from its start)."""

    start: int
    limit: float
    phases: int


def composite_schedule(
    profiles: Iterable[Profile],
    evse_id: int,
    start: datetime,
    duration: int,
    unit: str,
    tx: TxContext | None = None,
    default: Limit | None = None,
) -> list[CompositePeriod]:
    """The composite schedule for ``duration`` seconds from ``start`` in ``unit``.

    Instants where no profile applies get ``default`` (the charger's hardware
    maximum) or are left out if ``default`` is None.
    """
    plist = [p for p in profiles if _applies(p, evse_id, tx)]
    end = start + timedelta(seconds=duration)
    rel = tx.started if tx is not None else start
    points = {start}
    for p in plist:
        points |= _breakpoints(p, start, end, rel)
    out: list[CompositePeriod] = []
    for t in sorted(points):
        limit = limit_at(plist, evse_id, t, tx, relative_start=rel) or default
        if limit is None:
            continue
        period = CompositePeriod(
            start=int((t - start).total_seconds()),
            limit=limit.in_unit(unit),
            phases=limit.phases,
        )
        if out and (out[-1].limit, out[-1].phases) == (period.limit, period.phases):
            continue
        out.append(period)
    return out


class ProfileStack:
    """Installed profiles of one charger, with the install/clear rules of the spec."""

    def __init__(self, max_stack_level: int = 8) -> None:
        self.max_stack_level = max_stack_level
        self.profiles: list[Profile] = []

    def install(self, p: Profile, tx_active: bool = True) -> bool:
        """Install ``p``; returns False (Rejected) when the spec forbids it."""
        if p.stack_level < 0 or p.stack_level > self.max_stack_level:
            return False
        if p.purpose == Purpose.MAX and p.evse_id != 0:
            return False
        if p.purpose == Purpose.TX and (p.evse_id == 0 or not tx_active):
            return False
        self.profiles = [
            q
            for q in self.profiles
            if q.id != p.id
            and (q.purpose, q.stack_level, q.evse_id) != (p.purpose, p.stack_level, p.evse_id)
        ]
        self.profiles.append(p)
        return True

    def clear(
        self,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove matching profiles (id, if given, takes precedence); True if any removed."""

        def match(q: Profile) -> bool:
            if profile_id is not None:
                return q.id == profile_id
            return (
                (evse_id is None or q.evse_id == evse_id)
                and (purpose is None or q.purpose == purpose)
                and (stack_level is None or q.stack_level == stack_level)
            )

        keep = [q for q in self.profiles if not match(q)]
        removed = len(keep) != len(self.profiles)
        self.profiles = keep
        return removed

    def end_transaction(self, evse_id: int) -> None:
        """TxProfiles live only as long as their transaction (spec K01)."""
        self.profiles = [
            q for q in self.profiles if not (q.purpose == Purpose.TX and q.evse_id == evse_id)
        ]

    def purpose_of(self, name: str) -> Purpose:
        """Map a protocol purpose name to :class:`Purpose`."""
        return _PURPOSES[name]
