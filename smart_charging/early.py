"""Events this node committed, acted on before the event bus reads them back.

The load manager learns of every event from the bus, which reads the events
table in feed order (:mod:`csms.bus`): one read after the commit, reads paced
to every 25 ms, held back while an older write transaction runs. For the
events that free or need capacity *at once* - a departure, an arrival, an EV
reported full (SuspendedEV) or charging again - that delay is time in which a
departed or full EV's current stays planned for it. When this node wrote such
an event (its charger is connected here) and plans its site, the bus tells the
load manager right after the commit (``EventBus.committed_here``), and:

* a start or an end asks for the site's plan at once. Nothing else: the plan
  reads the site's sessions from Postgres, where the event is committed, so it
  sees the arrival or the departure; the event still comes through the bus
  (which forgets the ended session) but asks for no second plan;
* an EV state report (a 2.0.1 update naming SuspendedEV or Charging, with its
  samples; a 1.6 StatusNotification) is judged at once, as the bus's delivery
  would judge it, and not a second time when the bus delivers it.

The feed stays the source of truth: every event is still delivered and
applied in feed order; what is done early is the same work, once. A charger
of an unknown site, a site another node plans, or any other event: nothing is
done early.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from csms.events import ConnectorStatusChanged, Event, SessionEnded, SessionStarted, SessionUpdated
from smart_charging import observing
from smart_charging.tracking import Verdict

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

log = structlog.get_logger(__name__)

_REMEMBERED = 4096  # events acted on early, waiting for the bus's delivery (bounded)


class EarlyEvents:
    """Which events were acted on before the bus delivered them (see the module docstring)."""

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
            return
        if isinstance(event, SessionUpdated) and event.charging_state is not None:
            self._remember(event)
            verdict = observing.judge_update(svc, event)
        elif isinstance(event, ConnectorStatusChanged) and event.detail is not None:
            self._remember(event)
            verdict = observing.suspended(
                svc, event.charge_point_id, event.evse_id, event.detail, None, event.occurred_at
            )
        else:
            return
        if verdict is not None and verdict is not Verdict.STEADY:
            svc.request_replan(site_id, verdict.value)

    def _remember(self, event: Event) -> None:
        self.acted += 1
        self._done[event.event_id] = True
        while len(self._done) > _REMEMBERED:
            self._done.popitem(last=False)
