"""What a plan leaves behind: the per-site view for the API and the events it records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from csms.events import Protocol
from csms.storage import event_log
from smart_charging.events import ChargingLimitSet, LoadPlanComputed, site_key
from smart_charging.model import SiteTree
from smart_charging.tracking import Tracked


@dataclass
class SiteView:
    """The last plan of a site, as ``GET /api/v1/sites/{id}/load`` shows it."""

    site_id: str
    planned_at: datetime
    reason: str
    limit_a: float | None
    power_limit_kw: float | None
    allocated_a: tuple[float, float, float]
    measured_a: tuple[float, float, float]
    reserved_a: float
    sessions: list[dict[str, Any]] = field(default_factory=list)
    shifted: list[str] = field(default_factory=list)  # session keys in the time-of-use plan
    deadlines_missed: list[str] = field(default_factory=list)  # ... that cannot be met
    # charger -> the TxDefaultProfile limit it may apply (None: unknown): held for arrivals
    tx_defaults: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "planned_at": self.planned_at.isoformat(),
            "reason": self.reason,
            "limit_a": self.limit_a,
            "power_limit_kw": self.power_limit_kw,
            "allocated_a": list(self.allocated_a),
            "measured_a": list(self.measured_a),
            "reserved_a": self.reserved_a,
            "sessions": self.sessions,
            "shifted": self.shifted,
            "deadlines_missed": self.deadlines_missed,
            "tx_defaults": self.tx_defaults,
        }


@dataclass(frozen=True, slots=True)
class ProfileSend:
    """One TxProfile to send: the new limit, the one it replaces, the charger's version."""

    tracked: Tracked
    limit: float
    previous: float | None
    protocol: Protocol


def site_view(
    tree: SiteTree,
    reason: str,
    currents: Mapping[str, float],
    tracked: Mapping[str, Tracked],
    now: datetime,
) -> SiteView:
    """The per-site view after a plan: limit in force, allocated and measured per line.

    ``allocated`` is what the chargers were told (or, for a session set aside, its
    assumed draw), so it is what the site is committed to right now.
    """
    allocated = [0.0, 0.0, 0.0]
    measured = [0.0, 0.0, 0.0]
    reserved = 0.0
    sessions = []
    for key, t in tracked.items():
        lines = (0, 1, 2) if t.phases == 3 else (0,)
        amps = t.assumed if t.assumed is not None else (t.limit or 0.0)
        for p in lines:
            allocated[p] += amps
        if t.assumed is not None:
            reserved += t.assumed
        if t.measured is not None:
            for p in range(3):
                measured[p] += t.measured[p]
        sessions.append(
            {
                "charge_point_id": t.charge_point_id,
                "evse_id": t.evse_id,
                "transaction_id": t.transaction_id,
                "planned_a": currents.get(key),
                "limit_a": t.limit,
                "uncontrolled_a": t.assumed,
                "measured_a": list(t.measured) if t.measured else None,
                "phases": t.phases,
                "observed_max_a": t.observed_max,
                "idle": t.idle,  # full or idle EV: gave its share back
                "probing": t.probing,
            }
        )
    view = SiteView(
        site_id=tree.site.site_id,
        planned_at=now,
        reason=reason,
        limit_a=tree.site.phase_limit_at(now),
        power_limit_kw=tree.site.power_limit_kw,
        allocated_a=(round(allocated[0], 1), round(allocated[1], 1), round(allocated[2], 1)),
        measured_a=(round(measured[0], 1), round(measured[1], 1), round(measured[2], 1)),
        reserved_a=round(reserved, 1),
        sessions=sessions,
    )
    return view


async def record(
    pool: asyncpg.Pool,
    tree: SiteTree,
    view: SiteView,
    sent: Sequence[tuple[ProfileSend, str]],
    reason: str,
    duration_ms: float,
    now: datetime,
) -> None:
    """Append every profile sent and the plan itself to the event log, in one statement."""
    plan = LoadPlanComputed(
        charge_point_id=site_key(tree.site.site_id),
        occurred_at=now,
        site_id=tree.site.site_id,
        reason=reason,
        limit_a=view.limit_a,
        power_limit_kw=view.power_limit_kw,
        allocated_a=view.allocated_a,
        measured_a=view.measured_a,
        reserved_a=view.reserved_a,
        sessions=len(view.sessions),
        paused=sum(1 for s in view.sessions if s["planned_a"] == 0.0),
        changed=len(sent),
        duration_ms=round(duration_ms, 3),
        shifted=len(view.shifted),
        deadlines_missed=tuple(view.deadlines_missed),
    )
    limits = [
        ChargingLimitSet(
            charge_point_id=s.tracked.charge_point_id,
            occurred_at=now,
            site_id=tree.site.site_id,
            evse_id=s.tracked.evse_id,
            transaction_id=s.tracked.transaction_id,
            purpose="TxProfile",
            limit_a=s.limit,
            previous_limit_a=s.previous,
            phases=s.tracked.phases,
            status=status,
            reason=reason,
        )
        for s, status in sent
    ]
    async with pool.acquire() as conn:  # one statement: atomic, one round trip
        await event_log.append_many(conn, [*limits, plan])
