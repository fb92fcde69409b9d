"""Every charging profile the CSMS sends, made unambiguous and put in the charger's unit.

A firmware that gets an ``Absolute`` profile without ``startSchedule`` has no
defined behaviour (one widely used library logs "Undefined behavior, abort" and
applies it to one connector only); one that only takes W cannot use a schedule
in A. So, before a SetChargingProfile (or a remote start carrying a profile)
leaves the CSMS -- from the operator API or from the load manager --
:func:`fit_for_charger` applies the spec's rules to each of its schedules:

* ``Absolute``: a ``startSchedule`` is required; one that lacks it is completed
  with the moment it is sent (the API has already refused the cases where that
  moment would change what the schedule means, see
  :func:`handlers.commands.models.ChargingProfile`);
* ``Recurring``: ``recurrencyKind`` and ``startSchedule`` are required: a
  profile without them is refused (:class:`AmbiguousProfile`), there is no
  safe guess for when a day or week begins;
* ``Relative``: no ``startSchedule`` (it counts from the transaction's start):
  one with it is refused, as is ``recurrencyKind`` on a non-recurring profile;
* unit: a charger known to take only W gets W, one that takes only A gets A.
  ``W = A x numberPhases x NOMINAL_VOLTAGE_V`` with ``numberPhases`` of the
  period (3 when absent: the spec's default), the same phase-to-neutral 230 V
  the smart-charging model uses to turn kW limits into A. A limit turned into A
  is rounded down to 0.1 A, so the charger never gets more than was asked.
  A charger whose units are unknown gets the profile in the unit it was built in.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.storage import Executor
from csms.storage import interop as store
from handlers._time import ocpp_time

log = structlog.get_logger(__name__)

NOMINAL_VOLTAGE_V = 230.0  # V, phase to neutral: smart_charging.allocation.NOMINAL_VOLTAGE
DEFAULT_PHASES = 3  # both specs: numberPhases absent = 3

# The payload types that carry a charging profile, and the field that holds it.
_PROFILE_FIELD: dict[type, str] = {
    call16.SetChargingProfile: "cs_charging_profiles",
    call16.RemoteStartTransaction: "charging_profile",
    call201.SetChargingProfile: "charging_profile",
    call201.RequestStartTransaction: "charging_profile",
}


class AmbiguousProfile(ValueError):
    """A profile the spec does not define a meaning for; it is not sent."""


def carries_profile(payload: Any) -> bool:
    field = _PROFILE_FIELD.get(type(payload))
    return field is not None and getattr(payload, field) is not None


def _schedules(profile: dict[str, Any]) -> list[dict[str, Any]]:
    schedule = profile.get("charging_schedule")
    if isinstance(schedule, list):  # 2.0.1: one to three schedules
        return [s for s in schedule if isinstance(s, dict)]
    return [schedule] if isinstance(schedule, dict) else []  # 1.6: exactly one


def _check_kind(profile: dict[str, Any], schedules: list[dict[str, Any]], now: datetime) -> None:
    kind = profile.get("charging_profile_kind")
    name = f"profile {profile.get('charging_profile_id', profile.get('id'))}"
    if profile.get("recurrency_kind") and kind != "Recurring":
        raise AmbiguousProfile(f"{name}: recurrencyKind is only for a Recurring profile")
    for schedule in schedules:
        has_start = bool(schedule.get("start_schedule"))
        if kind == "Absolute" and not has_start:
            schedule["start_schedule"] = ocpp_time(now)
            log.info("interop.profile_start_completed", profile=name)
        elif kind == "Recurring" and not (has_start and profile.get("recurrency_kind")):
            raise AmbiguousProfile(f"{name}: a Recurring profile needs recurrencyKind "
                                   "and startSchedule")  # fmt: skip
        elif kind == "Relative" and has_start:
            raise AmbiguousProfile(f"{name}: a Relative profile has no startSchedule "
                                   "(it counts from the start of the transaction)")  # fmt: skip


def _to_w(limit: float, phases: int, voltage: float) -> float:
    return round(limit * phases * voltage, 1)


def _to_a(limit: float, phases: int, voltage: float) -> float:
    return math.floor(limit / (phases * voltage) * 10 + 1e-9) / 10


def _convert_unit(schedule: dict[str, Any], units: frozenset[str] | None, voltage: float) -> None:
    unit = schedule.get("charging_rate_unit")
    if not units or unit in units or unit not in ("A", "W"):
        return
    target = "W" if unit == "A" else "A"
    if target not in units:
        return
    convert: Callable[[float, int, float], float] = _to_w if target == "W" else _to_a
    periods = schedule.get("charging_schedule_period") or []
    for period in periods:
        phases = int(period.get("number_phases") or DEFAULT_PHASES)
        period["limit"] = convert(float(period["limit"]), phases, voltage)
    if schedule.get("min_charging_rate") is not None:
        phases = int((periods[0] if periods else {}).get("number_phases") or DEFAULT_PHASES)
        schedule["min_charging_rate"] = convert(float(schedule["min_charging_rate"]), phases,
                                                voltage)  # fmt: skip
    schedule["charging_rate_unit"] = target


def fit_profile(
    payload: Any,
    units: frozenset[str] | None,
    now: datetime,
    voltage: float = NOMINAL_VOLTAGE_V,
) -> Any:
    """``payload`` with its profile completed and converted (a copy; others unchanged).

    Raises :class:`AmbiguousProfile` for a profile the spec gives no meaning.
    """
    field = _PROFILE_FIELD.get(type(payload))
    if field is None or getattr(payload, field) is None:
        return payload
    profile = copy.deepcopy(getattr(payload, field))
    schedules = _schedules(profile)
    _check_kind(profile, schedules, now)
    for schedule in schedules:
        before = schedule.get("charging_rate_unit")
        _convert_unit(schedule, units, voltage)
        if schedule.get("charging_rate_unit") != before:
            log.debug("interop.profile_unit_converted", to=schedule["charging_rate_unit"],
                     accepted=sorted(units or ()))  # fmt: skip
    return dataclasses.replace(payload, **{field: profile})


async def fit_for_charger(
    conn: Executor, charge_point_id: str, payload: Any, voltage: float = NOMINAL_VOLTAGE_V
) -> Any:
    """:func:`fit_profile` with the charger's stored rate units; other payloads as they are."""
    if not carries_profile(payload):
        return payload
    units = await store.rate_units(conn, charge_point_id)
    return fit_profile(payload, units, datetime.now(UTC), voltage)
