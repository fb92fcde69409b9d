"""Which sessions a site has, as the planner tracks them (``Tracked``).

A session seen for the first time in this process starts at the worst case stored
for it by a previous planner (:mod:`smart_charging.planner_state`), at the
TxDefaultProfile its charger accepted, or - nothing known - set aside at its
charger's hardware maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from smart_charging.model import SiteTree, session_key
from smart_charging.planner_state import StoredLimit, Told, worst_case
from smart_charging.tracking import Tracked

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService


def hardware_max(tree: SiteTree, charge_point_id: str) -> float:
    for c in tree.chargers:
        if c.charge_point_id == charge_point_id:
            return c.connector_max_current_a or c.max_current_a
    return 0.0


def sync_sessions(
    svc: SmartChargingService,
    tree: SiteTree,
    rows: Sequence[Any],
    stored: dict[tuple[str, int], StoredLimit],
) -> dict[str, Tracked]:
    """Track every active session of the site; forget those that ended."""
    live: dict[str, Tracked] = {}
    # One session per EVSE: of stale rows (a stop never received), the latest wins.
    latest = {session_key(r["charge_point_id"], r["evse_id"]): r for r in rows}
    phases_of = {c.charge_point_id: c.phases for c in tree.chargers}
    for key, row in latest.items():
        t = svc.sessions.get(key)
        if t is None or t.transaction_id != row["transaction_id"]:
            cp, evse = row["charge_point_id"], row["evse_id"]
            t = Tracked(cp, evse, row["transaction_id"])
            if phases_of.get(cp) == 1:
                # On a single-phase charger from the start, not from its first meter
                # value minutes later: its urgency, its share of the time-of-use plan
                # and its profile's numberPhases all count the lines it can load.
                t.phases = 1
            known = stored.get((cp, evse))
            if known is not None and known.transaction_id == t.transaction_id:
                # A previous planner told it something: assume the worst until the
                # charger confirms a profile from this one.
                t.phases = known.phases
                t.saved = Told(cp, evse, t.transaction_id, known.phases, known.limit_a,
                               known.pending_a, known.assumed_a)  # fmt: skip
                worst = worst_case(known, hardware_max(tree, cp))
                told = [v for v in (known.limit_a, known.pending_a) if v is not None]
                t.floor_limit = min(told) if told else None
                if known.assumed_a is not None:
                    t.assumed = worst
                else:
                    t.limit, t.confirmed = worst, False
            elif (default := svc.fallbacks.defaults.get(cp)) is not None:
                t.limit = default  # it starts under the TxDefaultProfile it may apply
            else:
                t.assumed = hardware_max(tree, cp)
            svc.track(key, t)
        started = row["started_at"]
        t.rank = started.timestamp() if started is not None else svc.clock.now().timestamp()
        t.priority = row["priority"]
        t.departure_at = row["departure_at"]
        t.energy_wanted_wh = row["energy_wanted_wh"]
        t.energy_wh = row["energy_wh"]
        live[key] = t
    site_chargers = {c.charge_point_id for c in tree.chargers}
    for key, t in list(svc.sessions.items()):
        if t.charge_point_id in site_chargers and key not in live:
            svc.untrack(key)
    return live
