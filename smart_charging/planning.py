"""One re-plan of a site: read, allocate, send decreases before increases, record.

A re-plan (:meth:`SitePlanning.replan`) runs only on the node that holds the
site's lease (:mod:`smart_charging.leadership`):

1. reads the site's tree, its active sessions and what the site's planner -
   this node or the one before it - stored of what each session was told
   (:mod:`smart_charging.planner_state`). A session seen for the first time in
   this process starts at the worst case stored for it (a limit accepted or
   sent, whichever is higher; the hardware maximum where nothing is stored) and
   *unconfirmed*: it is sent a profile on this plan even if unchanged - the
   lowest limit it may be enforcing first when its new limit is higher than
   that (:func:`first_step`), so a resumed plan never raises a draw before the
   decreases have settled;
2. allocates (:func:`smart_charging.allocation.allocate`); sessions that
   cannot be steered are set aside at their last known maximum; full and idle
   EVs are in the lowest class (:func:`smart_charging.tracking.note_draw`); on a
   site with prices, the sessions with a departure time and energy wanted are
   capped by the site's time-of-use plan for the current quarter hour
   (:mod:`smart_charging.tou_plan`; 0 A and no share held when it switches them off);
3. stores the limits it is about to send as *pending* (fenced by the lease's
   token: a node that lost the site without noticing cannot commit, and so does
   not send), sends the limits that went *down* and waits for the answers; a
   rejected or unanswered one makes its session uncontrolled, and the plan is
   made again with that load set aside, before anything goes *up*;
4. only then - and not before the site's last accepted decrease, stored in
   Postgres with the database's clock, has settled - sends the limits that went up;
5. tries to bring uncontrolled sessions of online chargers back under control
   with a profile at exactly the load set aside for them;
6. stores what each session now has, the plan's view, and records every
   profile sent and the plan itself as events (topic ``load-management``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from smart_charging import planner_state, reporting, store, tou_plan
from smart_charging.allocation import NOMINAL_VOLTAGE, allocate
from smart_charging.model import LiveSession, SiteTree, build_problem, session_key
from smart_charging.reporting import ProfileSend, SiteView
from smart_charging.sending import ProfileSender, first_step, is_decrease
from smart_charging.session_sync import hardware_max, sync_sessions
from smart_charging.tracking import (
    Tracked,
    note_suspended,
    probe_found_nothing,
    start_probe,
    still_suspended,
)

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

log = structlog.get_logger(__name__)

_MAX_ROUNDS = 4  # decrease rounds before giving up on a plan (each failure sets load aside)


class SitePlanning:
    """The re-plan of one site at a time, for :class:`SmartChargingService`."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.settings = service.settings
        self.pool = service.pool
        self.clock = service.clock
        self.sender = ProfileSender(service)

    async def replan(self, site_id: str, reason: str) -> SiteView | None:
        """Plan ``site_id`` now and send what changed (see the module docstring)."""
        svc = self.service
        if not svc.leadership.holds(site_id):
            return None  # another node plans it
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            tree = await store.load_tree(conn, site_id)
            rows = await store.active_sessions(conn, site_id) if tree else []
            stored = await planner_state.load_limits(conn, site_id) if tree else {}
            if tree is not None:
                await svc.refresh_presence(conn, [c.charge_point_id for c in tree.chargers])
        if tree is None:
            svc.views.pop(site_id, None)
            return None
        for place in tree.chargers:
            svc.remember_site(place.charge_point_id, site_id)
        await svc.ensure_fallbacks(tree, reason)
        live = sync_sessions(svc, tree, rows, stored)  # a snapshot: sessions may end meanwhile
        sent: list[tuple[ProfileSend, str]] = []
        currents: dict[str, float] = {}
        reserved: dict[str, float] = {}
        tou: dict[str, bool] = {}
        decreased = False
        for _ in range(_MAX_ROUNDS):
            currents, reserved, changes, tou = await self._plan(tree, live)
            decreases = [c for c in changes if is_decrease(c)]
            steps = [s for s in map(first_step, changes) if s is not None]
            first = decreases + steps
            await self.sender.commit_intent(site_id, first, mark_decrease=False)
            results = await self.sender.send_all(first)
            sent.extend(zip(first, results, strict=True))
            accepted_decrease = any(
                r == "Accepted" and c.previous is not None and c.limit < c.previous
                for c, r in zip(first, results, strict=True)
            )
            if accepted_decrease:
                svc.decreased_at[site_id] = self.clock.monotonic()
                decreased = True
            if all(r == "Accepted" for r in results):
                increases = [c for c in changes if c not in decreases]
                if increases:
                    await self.sender.commit_intent(site_id, increases, mark_decrease=decreased)
                    decreased = False  # stored with the intent
                    await self._settle(site_id)
                    if await self._sessions_changed(site_id, live):
                        # A session that started during the settle time draws its
                        # TxDefaultProfile share already: the increases planned without it
                        # could exceed the limit. The decreases stand; plan again with it.
                        svc.request_replan(site_id, "sessions_changed")
                        break
                results = await self.sender.send_all(increases)
                sent.extend(zip(increases, results, strict=True))
                break
        reattached = await self.sender.reattach(tree, live, reserved)
        sent.extend(reattached)
        current = {k: t for k, t in live.items() if svc.sessions.get(k) is t}  # not ended
        view = reporting.site_view(tree, reason, currents, current, self.clock.now())
        view.shifted = sorted(tou)
        view.deadlines_missed = sorted(k for k, feasible in tou.items() if not feasible)
        svc.views[site_id] = view
        await self.sender.commit_state(site_id, current, view, decreased)
        duration_ms = (time.perf_counter() - started) * 1000
        await reporting.record(self.pool, tree, view, sent, reason, duration_ms, self.clock.now())
        if any(status == "Accepted" for _, status in reattached):
            svc.request_replan(site_id, "reattached")  # plan them normally at once
        return view

    async def _sessions_changed(self, site_id: str, live: dict[str, Tracked]) -> bool:
        """Whether the site's active sessions are no longer the ones ``live`` planned."""
        async with self.pool.acquire() as conn:
            rows = await store.active_sessions(conn, site_id)
        now = {(session_key(r["charge_point_id"], r["evse_id"]), r["transaction_id"]) for r in rows}
        return not now <= {(key, t.transaction_id) for key, t in live.items()}

    async def _settle(self, site_id: str) -> None:
        """Let the EVs follow the site's last accepted decreases before anyone gets more."""
        decreased_at = self.service.decreased_at.get(site_id)
        if decreased_at is not None:
            wait = decreased_at + self.settings.smart_charging_settle - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)

    async def _plan(
        self, tree: SiteTree, tracked: dict[str, Tracked]
    ) -> tuple[dict[str, float], dict[str, float], list[ProfileSend], dict[str, bool]]:
        """Allocate; return the currents, the load set aside per session, what changed, and
        the sessions on a time-of-use schedule (key -> whether their deadline can be met)."""
        svc = self.service
        now = self.clock.now()
        clock = self.clock.monotonic()
        live = []
        plan = await self._tou(tree, tracked, now)
        caps = plan.caps_a if plan is not None else {}
        for key, t in tracked.items():
            online = svc.protocol_of(t.charge_point_id) is not None
            if not online and t.assumed is None:
                t.assumed = t.last_known_max(svc.fallbacks.limit_for(tree, t.charge_point_id))
            if probe_found_nothing(t, clock, svc.settle_grace):
                t.probing, t.idle, t.idle_at = False, True, clock
            elif not t.idle and still_suspended(t, clock, svc.settle_grace):
                note_suspended(t, True, clock)  # full right after a change: idle now
            window = self.settings.smart_charging_probe_window
            if start_probe(t, clock, self.settings.smart_charging_probe_interval, window):
                # Ended at its window's end, not at the next periodic plan (minutes
                # later, the probed EV holding its minimum all along).
                svc.replan_after(tree.site.site_id, window, "probe_window_ended")
            live.append(
                LiveSession(
                    t.charge_point_id,
                    t.evse_id,
                    t.transaction_id,
                    rank=t.rank,
                    phases=t.phases,
                    priority=t.priority,
                    observed_max=t.observed_max,
                    uncontrolled_draw=t.assumed,
                    urgency=svc.urgency_of(t, tree, now),
                    idle=t.idle,
                    probing=t.probing,
                    plan_cap_a=None if t.probing else caps.get(key),
                )
            )
        problem = build_problem(tree, live, now)
        # In a thread: a big site takes a second of CPU, and chargers must still be answered
        # meanwhile (the GIL is handed back to the event loop every few milliseconds).
        allocation = await asyncio.to_thread(allocate, problem.nodes, problem.sessions)
        currents = dict(allocation.currents)
        changes = []
        for key, t in tracked.items():
            protocol = svc.protocol_of(t.charge_point_id)
            if key not in currents or t.assumed is not None or protocol is None:
                continue
            limit = currents[key]
            if t.limit is None or not t.confirmed or abs(limit - t.limit) >= 0.05:
                changes.append(ProfileSend(t, limit, t.limit, protocol))
        tou = dict(plan.feasible) if plan is not None else {}
        return currents, dict(problem.reserved), changes, tou

    async def _tou(
        self, tree: SiteTree, tracked: dict[str, Tracked], now: datetime
    ) -> tou_plan.Allowances | None:
        """The site's time-of-use plan for now (None: no prices, no deadlines, or failed)."""
        svc = self.service
        needs, reserved_kw = [], 0.0
        for key, t in tracked.items():
            if t.assumed is not None or svc.protocol_of(t.charge_point_id) is None:
                draw = t.assumed if t.assumed is not None else t.limit or 0.0
                reserved_kw += draw * t.phases * NOMINAL_VOLTAGE / 1000.0
            elif t.departure_at and t.energy_wanted_wh is not None and not t.idle:
                left = t.energy_wanted_wh - (t.energy_wh or 0.0)
                hardware = hardware_max(tree, t.charge_point_id)
                wanted = t.energy_wanted_wh
                needs.append(tou_plan.Need(key, t.phases, hardware, t.departure_at, left, wanted))
        history = await svc.tou.history(tree, needs, now, self.pool)
        return await svc.tou.current(tree, needs, now, reserved_kw, history)
