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
   profile sent and the plan itself as events (topic ``load-management``) -
   after the plan, beside the next one's reads (whose first write waits for it).

When a plan lowers nothing (a departure gave capacity back) and the site's last
decrease has settled, the increases' intent is stored at once and the look for
sessions started meanwhile runs beside it (not after it).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import structlog

from smart_charging import plan_inputs, planner_state, reporting, store
from smart_charging.allocation import allocate
from smart_charging.arrivals import (
    DefaultChange,
    default_changes,
    default_targets,
    headroom,
    hold_for_arrivals,
)
from smart_charging.model import SiteTree, build_problem, session_key
from smart_charging.reporting import ProfileSend, SiteView
from smart_charging.sending import PlannerLost, ProfileSender, first_step, is_decrease
from smart_charging.session_sync import sync_sessions
from smart_charging.tracking import (
    Tracked,
    draws_nothing,
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


async def _false() -> bool:
    return False


class SitePlanning:
    """The re-plan of one site at a time, for :class:`SmartChargingService`."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.settings = service.settings
        self.pool = service.pool
        self.clock = service.clock
        self.sender = ProfileSender(service)
        # Per site: the previous plan's state and events being stored (see _replan's end).
        self._tails: dict[str, asyncio.Task[None]] = {}

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
            increases = [c for c in changes if c not in decreases]
            defaults_up = [d for d in plan.defaults if not d.is_decrease]
            # Nothing to lower (a departure gave capacity back) and the site's last decrease
            # has settled: the increases' intent is stored at once and the look for new
            # sessions runs beside it - two round trips fewer between the event and its
            # last answer. Not when the first round lowers an EV "known to draw nothing":
            # that is judged from a SuspendedEV report's arrival, and a report said while
            # an EV was still following a raise but delivered late (a busy feed) would
            # make an EV that draws look full - raising the others without the settle
            # time then breaches the limit while it ramps down (seen at a 600x clock).
            at_once = not first and not defaults_down and self._settle_wait(site_id) <= 0
            await self._tail_stored(site_id)  # its rows are written before these intents
            _, changed = await asyncio.gather(
                self.sender.commit_intent(
                    site_id, increases if at_once else first, mark_decrease=False
                ),
                self._sessions_changed(site_id, live)
                if at_once and (increases or defaults_up)
                else _false(),
            )
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
                if (increases or defaults_up) and not at_once:
                    # The intent is stored while the EVs follow the decreases (it may be
                    # stored early: a new planner takes a pending limit as in force).
                    _, changed = await asyncio.gather(
                        self.sender.commit_intent(site_id, increases, mark_decrease=decreased),
                        self._settled_then_changed(site_id, live),
                    )
                    decreased = False  # stored with the intent
                if changed and (increases or defaults_up):
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
        # Stored after the plan, not in it: a departure or a full EV reported meanwhile
        # waits for this plan's end, and the next plan's reads and allocation need none
        # of it. Its first write (an intent) waits for this one (the same rows). Lost in
        # a crash it leaves the intent, as a crash before it did.
        self._tails[site_id] = asyncio.create_task(
            self._tail(tree, current, view, decreased, sent, reason, duration_ms)
        )
        if any(status == "Accepted" for _, status in reattached):
            svc.request_replan(site_id, "reattached")  # plan them normally at once
        return view

    async def _tail(
        self,
        tree: SiteTree,
        current: dict[str, Tracked],
        view: SiteView,
        decreased: bool,
        sent: list[tuple[ProfileSend, str]],
        reason: str,
        duration_ms: float,
    ) -> None:
        """What every session of a plan now has, and its events (two tables: at once)."""
        site_id = tree.site.site_id
        try:
            await asyncio.gather(
                self.sender.commit_state(site_id, current, view, decreased),
                self._record(tree, view, sent, reason, duration_ms),
            )
        except PlannerLost:
            log.warning("smart_charging.planner_lost", site_id=site_id)
        except Exception:  # the next plan writes its own state
            log.exception("smart_charging.state_not_stored", site_id=site_id)

    async def _tail_stored(self, site_id: str) -> None:
        tail = self._tails.pop(site_id, None)
        if tail is not None:
            await asyncio.shield(tail)

    async def finish(self) -> None:
        """Let the last plans' state be stored (the service stops)."""
        tails, self._tails = list(self._tails.values()), {}
        if tails:
            await asyncio.wait(tails, timeout=5.0)

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

    def _settle_wait(self, site_id: str) -> float:
        """Seconds until the site's last accepted decrease has settled (<= 0: it has)."""
        decreased_at = self.service.decreased_at.get(site_id)
        if decreased_at is None:
            return 0.0
        return decreased_at + self.settings.smart_charging_settle - self.clock.monotonic()

    async def _settle(self, site_id: str) -> None:
        """Let the EVs follow the site's last accepted decreases before anyone gets more."""
        wait = self._settle_wait(site_id)
        if wait > 0:
            await self.clock.sleep(wait)

    async def _settled_then_changed(self, site_id: str, live: dict[str, Tracked]) -> bool:
        """After the settle time: whether sessions started meanwhile (a start already seen
        through the feed is known without asking the database)."""
        await self._settle(site_id)
        if "session_started" in self.service.pending_reasons(site_id):
            return True
        return await self._sessions_changed(site_id, live)

    async def _plan(self, tree: SiteTree, tracked: dict[str, Tracked]) -> Plan:
        """Allocate the sessions, then the TxDefault of every charger (see :class:`Plan`)."""
        svc = self.service
        now = self.clock.now()
        ceilings = svc.fallbacks.ceilings(tree)
        tou = await plan_inputs.tou_allowances(svc, tree, tracked, now)
        live = plan_inputs.live_sessions(svc, tree, tracked, tou, ceilings, now)
        arrivals = plan_inputs.arrival_room(svc, tree, tracked)
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
