"""Smart-charging decisions as events (topic ``load-management``).

Two types: ``charging_limit_set``, one per profile sent to a charger (the
limit, the one it replaces, and whether the charger accepted it), and
``load_plan_computed``, one per re-plan of a site (its limit in force, what
was allocated and what was last measured, per line). A plan is about a site,
not a charger: its ``charge_point_id`` (the Kafka key) is ``site:<site_id>``,
so one site's plans stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from csms.events import Event


def site_key(site_id: str) -> str:
    """The ``charge_point_id`` (Kafka key) of a site-level event."""
    return f"site:{site_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingLimitSet(Event):
    """A SetChargingProfile the load manager sent, and the charger's answer."""

    type: ClassVar[str] = "charging_limit_set"
    site_id: str
    evse_id: int  # 0 = the whole charger (the TxDefaultProfile sent at boot)
    transaction_id: str | None
    purpose: str  # TxProfile, TxDefaultProfile, ChargePointMaxProfile or ChargingStationMaxProfile
    limit_a: float  # per line
    previous_limit_a: float | None
    phases: int
    status: str  # Accepted, Rejected, NoAnswer, Offline, Error
    reason: str  # what made the site re-plan


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadPlanComputed(Event):
    """One re-plan of a site: limit in force, allocated and measured current per line."""

    type: ClassVar[str] = "load_plan_computed"
    site_id: str
    reason: str
    limit_a: float | None  # per line, after any demand-response cut; None = no limit
    power_limit_kw: float | None
    allocated_a: tuple[float, float, float]
    measured_a: tuple[float, float, float]
    reserved_a: float  # assumed drawn by sessions the CSMS cannot steer right now
    sessions: int
    paused: int
    changed: int  # profiles sent
    duration_ms: float
    shifted: int = 0  # sessions in the site's time-of-use plan
    # Sessions (``<charge_point_id>/<evse_id>``) in the plan that will not get all the energy
    # they want by their departure, even with the site's limit used as well as it can be.
    deadlines_missed: tuple[str, ...] = ()
