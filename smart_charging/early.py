"""Departures and arrivals this node committed, planned before the event bus reads them back.

The load manager learns of every event from the bus, which reads the events
table in feed order (:mod:`csms.bus`): one read after the commit, reads paced
to every 25 ms, held back while an older write transaction runs. A departure
frees capacity and an arrival needs it *at once*: that delay was time in which
a departed EV's current stayed planned for it, or a new EV waited at its 0 A
TxDefault (15-30 ms real under load: 9-18 simulated seconds at the benchmark's
600x clock). When this node wrote the start or the end (its charger is
connected here) and plans its site, the bus tells the load manager right after
the commit (``EventBus.committed_here``), and the site's plan is asked for at
once. Nothing else is done early: the plan reads the site's sessions from
Postgres, where the event is committed, so it sees the arrival or the
departure. The event still comes through the bus, in feed order, and is
applied as before (the ended session is forgotten), but asks for no second
plan.

EV state reports (SuspendedEV, Charging) are *not* judged early: tried, the
reports then arrived inside the settle grace of the limit change that caused
them more often, and full EVs were found idle and back again about twice as
often (ev_idle 45 -> 72, ev_drawing_again 32 -> 69 plans a day, twice the
profiles sent: the same 10 % day at 600x), costing more in ramps than it saved.
A charger of an unknown site, a site another node plans, or any other event:
nothing is done early.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from csms.events import Event, SessionEnded, SessionStarted

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

log = structlog.get_logger(__name__)

_REMEMBERED = 4096  # events acted on early, waiting for the bus's delivery (bounded)


class EarlyEvents:
    """Starts and ends planned before the bus delivered them (see the module docstring)."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self._done: OrderedDict[UUID, bool] = OrderedDict()
        self.acted = 0  # events acted on early (diagnostics, tests)

    def committed(self, event: Event | None) -> None:
        """Told by the bus right after this process committed ``event`` (never raises)."""
        if event is None:
            return
        try:
            self._act(event)
        except Exception:  # a hint: the bus delivers the event in any case
            log.warning("smart_charging.early_failed", type=event.type, exc_info=True)

    def delivered(self, event: Event) -> bool:
        """The bus delivers ``event``: whether it was acted on early (then forgotten)."""
        if not self._done:
            return False
        return self._done.pop(event.event_id, False)

    def _act(self, event: Event) -> None:
        svc = self.service
        site_id = svc.cached_site(event.charge_point_id)
        if site_id is None or not svc.leadership.holds(site_id):
            return
        if isinstance(event, SessionStarted | SessionEnded):
            self._remember(event)
            reason = "session_started" if isinstance(event, SessionStarted) else "session_ended"
            svc.request_replan(site_id, reason)

    def _remember(self, event: Event) -> None:
        self.acted += 1
        self._done[event.event_id] = True
        while len(self._done) > _REMEMBERED:
            self._done.popitem(last=False)
