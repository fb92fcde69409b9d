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
import functools
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg
import structlog

from smart_charging import planner_state, reporting, store, tou_plan
from smart_charging.allocation import NOMINAL_VOLTAGE, allocate
from smart_charging.arrivals import (
    DefaultChange,
    default_changes,
    default_targets,
    headroom,
    hold_for_arrivals,
)
from smart_charging.model import LiveSession, SiteTree, build_problem, session_key
from smart_charging.reporting import ProfileSend, SiteView
from smart_charging.sending import ProfileSender, first_step, is_decrease
from smart_charging.session_sync import hardware_max, sync_sessions
from smart_charging.tracking import (
    Tracked,
    draws_nothing,
    note_suspended,
    probe_found_nothing,
    start_probe,
    still_suspended,
)

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

log = structlog.get_logger(__name__)

_INLINE_SESSIONS = 64  # allocated on the event loop up to this many sessions (< 2 ms)
_MAX_ROUNDS = 4  # decrease rounds before giving up on a plan (each failure sets load aside)


@dataclass(slots=True)
class Plan:
    """One allocation of a site: what each session gets and what its chargers hold."""

    currents: dict[str, float]  # session key -> A
    reserved: dict[str, float]  # session key -> load set aside (uncontrolled)
    changes: list[ProfileSend]  # TxProfiles to send
    tou: dict[str, bool]  # sessions on the time-of-use plan -> deadline feasible
    defaults: list[DefaultChange]  # TxDefaultProfiles to send


@dataclass(slots=True)
class SiteRead:
    """What a plan reads of its site first."""

    tree: SiteTree
    rows: list[asyncpg.Record]  # active sessions (:func:`smart_charging.store.active_sessions`)
    stored: dict[tuple[str, int], planner_state.StoredLimit]  # what planners told them


@dataclass(slots=True)
class ArrivalRoom:
    """What a plan keeps for sessions that may start (:mod:`smart_charging.arrivals`)."""

    free: dict[str, int]  # charger -> connectors without a session
    fixed: dict[str, float]  # charger -> A per line held for a TxDefault that stays as it is
    steerable: set[str]  # chargers whose TxDefault this plan may change
    held: float  # A per line held back from the sessions (the site's arrival reserve)


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
        read = await self._read(site_id)
        if read is None:
            svc.views.pop(site_id, None)
            return None
        try:
            return await self._replan(read, reason, started)
        finally:
            self.sender.units = {}  # read again with the next plan

    async def _read(self, site_id: str) -> SiteRead | None:
        """The site's tree, active sessions, stored limits, chargers' presence and units.

        Every read at once, each on a connection of the pool: a plan waits for the
        slowest, not for their sum (every round trip is time in which capacity a
        departed or full EV gave back waits for the plan).
        """
        tree, rows, stored, chargers = await asyncio.gather(
            store.load_tree_at_once(self.pool, site_id),
            store.active_sessions(self.pool, site_id),
            planner_state.load_limits(self.pool, site_id),
            store.site_chargers(self.pool, site_id),
        )
        if tree is None:
            return None
        ids = [c.charge_point_id for c in tree.chargers]
        found = {r["charge_point_id"]: r for r in chargers}
        connected = {cp: r["protocol"] for cp, r in found.items() if r["protocol"] is not None}
        self.service.note_presence(ids, connected)
        self.sender.units = {
            cp: frozenset(found[cp]["units"]) if cp in found and found[cp]["units"] else None
            for cp in ids
        }
        return SiteRead(tree, rows, stored)

    async def _replan(self, read: SiteRead, reason: str, started: float) -> SiteView:
        svc = self.service
        tree, site_id = read.tree, read.tree.site.site_id
        for place in tree.chargers:
            svc.remember_site(place.charge_point_id, site_id)
        await svc.ensure_fallbacks(tree, reason)
        # A snapshot: sessions may end meanwhile.
        live = sync_sessions(svc, tree, read.rows, read.stored)
        sent: list[tuple[ProfileSend, str]] = []
        currents: dict[str, float] = {}
        reserved: dict[str, float] = {}
        tou: dict[str, bool] = {}
        decreased = False
        for _ in range(_MAX_ROUNDS):
            plan = await self._plan(tree, live)
            currents, reserved, changes, tou = plan.currents, plan.reserved, plan.changes, plan.tou
            decreases = [c for c in changes if is_decrease(c)]
            steps = [s for s in map(first_step, changes) if s is not None]
            first = decreases + steps
            defaults_down = [d for d in plan.defaults if d.is_decrease]
            # An EV known to draw nothing (full) gives nothing back by following its lower
            # limit: the others need not wait the settle time for it.
            quiet = [draws_nothing(c.tracked, svc.settle_grace) for c in first]
            await self.sender.commit_intent(site_id, first, mark_decrease=False)
            results, default_results = await asyncio.gather(
                self.sender.send_all(first),
                svc.fallbacks.send_defaults(tree, defaults_down, reason),
            )
            sent.extend(zip(first, results, strict=True))
            accepted_decrease = any(
                r == "Accepted" and c.previous is not None and c.limit < c.previous and not q
                for c, r, q in zip(first, results, quiet, strict=True)
            ) or any(r == "Accepted" for r in default_results)  # a new session may follow it
            if accepted_decrease:
                svc.decreased_at[site_id] = self.clock.monotonic()
                decreased = True
            if all(r == "Accepted" for r in [*results, *default_results]):
                increases = [c for c in changes if c not in decreases]
                defaults_up = [d for d in plan.defaults if not d.is_decrease]
                if increases or defaults_up:
                    # The intent is stored while the EVs follow the decreases (it may be
                    # stored early: a new planner takes a pending limit as in force).
                    await asyncio.gather(
                        self.sender.commit_intent(site_id, increases, mark_decrease=decreased),
                        self._settle(site_id),
                    )
                    decreased = False  # stored with the intent
                    if await self._sessions_changed(site_id, live):
                        # A session that started during the settle time draws its charger's
                        # TxDefault (held for it: no limit is exceeded), but the increases
                        # planned without it would have to be taken back at once to give it
                        # its share. The decreases stand; plan again with it.
                        svc.request_replan(site_id, "sessions_changed")
                        break
                results = await self.sender.send_all(increases)
                sent.extend(zip(increases, results, strict=True))
                await svc.fallbacks.send_defaults(tree, defaults_up, reason)
                break
        reattached = await self.sender.reattach(tree, live, reserved)
        sent.extend(reattached)
        current = {k: t for k, t in live.items() if svc.sessions.get(k) is t}  # not ended
        view = reporting.site_view(tree, reason, currents, current, self.clock.now())
        view.shifted = sorted(tou)
        view.deadlines_missed = sorted(k for k, feasible in tou.items() if not feasible)
        view.tx_defaults = {c.charge_point_id: svc.fallbacks.defaults.get(c.charge_point_id)
                            for c in tree.chargers}  # fmt: skip
        svc.views[site_id] = view
        duration_ms = (time.perf_counter() - started) * 1000
        await asyncio.gather(  # two tables, two connections: at once
            self.sender.commit_state(site_id, current, view, decreased),
            self._record(tree, view, sent, reason, duration_ms),
        )
        if any(status == "Accepted" for _, status in reattached):
            svc.request_replan(site_id, "reattached")  # plan them normally at once
        return view

    async def _record(
        self,
        tree: SiteTree,
        view: SiteView,
        sent: list[tuple[ProfileSend, str]],
        reason: str,
        duration_ms: float,
    ) -> None:
        """Every profile sent and the plan itself, as events (topic ``load-management``)."""
        await reporting.record(self.pool, tree, view, sent, reason, duration_ms, self.clock.now())

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

    async def _plan(self, tree: SiteTree, tracked: dict[str, Tracked]) -> Plan:
        """Allocate the sessions, then the TxDefault of every charger (see :class:`Plan`)."""
        svc = self.service
        now = self.clock.now()
        ceilings = svc.fallbacks.ceilings(tree)
        tou = await self._tou(tree, tracked, now)
        live = self._live_sessions(tree, tracked, tou, ceilings, now)
        arrivals = self._arrival_room(tree, tracked)
        problem = build_problem(tree, live, now, arrivals.fixed)
        nodes = hold_for_arrivals(problem.nodes, arrivals.held)
        if len(problem.sessions) <= _INLINE_SESSIONS:
            # About 0.03 ms of CPU a session: a thread's hand-over back to a busy event
            # loop would cost the plan more than the allocation itself.
            allocation = allocate(nodes, problem.sessions, fill_gaps=problem.fill_gaps)
        else:
            # In a thread: a big site takes a second of CPU, and chargers must still be
            # answered meanwhile (the GIL is handed back to the loop every few ms).
            allocation = await asyncio.to_thread(
                functools.partial(allocate, fill_gaps=problem.fill_gaps), nodes, problem.sessions
            )
        currents = dict(allocation.currents)
        changes = []
        limits_of: dict[str, list[float]] = {}  # charger -> the limits of its sessions
        for key, t in tracked.items():
            protocol = svc.protocol_of(t.charge_point_id)
            if key not in currents or t.assumed is not None or protocol is None:
                bound = t.assumed if t.assumed is not None else t.limit
                limits_of.setdefault(t.charge_point_id, []).append(bound or 0.0)
                continue
            limit = currents[key]
            limits_of.setdefault(t.charge_point_id, []).append(limit)
            if t.limit is None or not t.confirmed or abs(limit - t.limit) >= 0.05:
                changes.append(ProfileSend(t, limit, t.limit, protocol))
        room = headroom(problem.nodes, problem.sessions, currents)
        targets = default_targets(
            tree, room, ceilings, arrivals.free, limits_of, arrivals.steerable
        )
        defaults = default_changes(tree, targets, svc.fallbacks.defaults, ceilings, arrivals.free)
        feasible = dict(tou.feasible) if tou is not None else {}
        return Plan(currents, dict(problem.reserved), changes, feasible, defaults)

    def _live_sessions(
        self,
        tree: SiteTree,
        tracked: dict[str, Tracked],
        tou: tou_plan.Allowances | None,
        ceilings: dict[str, float],
        now: datetime,
    ) -> list[LiveSession]:
        """The allocator's view of every tracked session (idle, probing, capped by the TOU plan)."""
        svc = self.service
        clock = self.clock.monotonic()
        caps = tou.caps_a if tou is not None else {}
        live = []
        for key, t in tracked.items():
            cp = t.charge_point_id
            online = svc.protocol_of(cp) is not None
            if not online and t.assumed is None:
                # Offline: it may go on at its limit, or start under its TxDefault.
                t.assumed = t.last_known_max(svc.fallbacks.defaults.get(cp, ceilings.get(cp, 0)))
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
                    cp,
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
        return live

    def _arrival_room(self, tree: SiteTree, tracked: dict[str, Tracked]) -> ArrivalRoom:
        """Free connectors, whose TxDefault can be changed, and what must be held for the rest."""
        fallbacks = self.service.fallbacks
        ceilings = fallbacks.ceilings(tree)
        busy: dict[str, list[Tracked]] = {}
        for t in tracked.values():
            busy.setdefault(t.charge_point_id, []).append(t)
        free, fixed, steerable = {}, {}, set()
        for place in tree.chargers:
            cp = place.charge_point_id
            sessions = busy.get(cp, [])
            free[cp] = max(0, place.connectors - len(sessions))
            if fallbacks.steerable(cp):
                steerable.add(cp)
                continue
            # Its TxDefault stays what it is: every free connector may start a session under
            # it, and a session that ends may be followed by one (counted above its limit).
            online = self.service.protocol_of(cp) is not None
            unknown = hardware_max(tree, cp) if online else ceilings.get(cp, 0.0)
            default = fallbacks.defaults.get(cp, unknown)
            extra = sum(max(0.0, default - (t.assumed or 0.0)) for t in sessions)
            fixed[cp] = free[cp] * default + extra
        held = tree.site.arrival_reserve_a if any(free[cp] for cp in steerable) else 0.0
        return ArrivalRoom(free, fixed, steerable, held)

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
