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
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import structlog

from csms.cluster.leases import lease_is_current
from csms.connection import CallErrorReceived
from csms.events import Protocol
from csms.interop.profiles import fit_for_charger
from csms.router import ChargerNotConnected, WrongProtocolVersion
from csms.storage import Executor
from smart_charging import planner_state, profiles, reporting, store, tou_plan
from smart_charging.allocation import NOMINAL_VOLTAGE, allocate
from smart_charging.leadership import lease_name
from smart_charging.model import LiveSession, SiteTree, build_problem, session_key
from smart_charging.planner_state import StoredLimit, Told, worst_case
from smart_charging.reporting import ProfileSend, SiteView
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

_MAX_ROUNDS = 4  # decrease rounds before giving up on a plan (each failure sets load aside)


class PlannerLost(RuntimeError):
    """This node no longer holds the site's lease: it must not send anything more."""


def hardware_max(tree: SiteTree, charge_point_id: str) -> float:
    for c in tree.chargers:
        if c.charge_point_id == charge_point_id:
            return c.connector_max_current_a or c.max_current_a
    return 0.0


def is_decrease(send: ProfileSend) -> bool:
    """Sent in the first round: a lower limit, or a first or re-confirming one not higher.

    For an unconfirmed session (resumed from a previous planner) the charger may enforce
    anything between ``floor_limit`` and ``limit``: only a limit at or below the floor is
    sure not to raise its draw.
    """
    t = send.tracked
    if send.previous is None:
        return True
    if not t.confirmed:
        floor = t.floor_limit if t.floor_limit is not None else send.previous
        return send.limit <= floor
    return send.limit < send.previous


def first_step(send: ProfileSend) -> ProfileSend | None:
    """For an unconfirmed session whose new limit may be an increase: the floor first.

    Its draw may be anywhere between the floor and the worst case; sending the new limit
    at once could raise it while others are still coming down, and waiting could leave it
    above its share. So it gets the floor (never an increase) with the decreases, and its
    new limit with the increases, after the settle time.
    """
    t = send.tracked
    if t.confirmed or is_decrease(send) or t.floor_limit is None:
        return None
    return ProfileSend(t, t.floor_limit, t.limit, send.protocol)


class SitePlanning:
    """The re-plan of one site at a time, for :class:`SmartChargingService`."""

    def __init__(self, service: SmartChargingService) -> None:
        self.service = service
        self.settings = service.settings
        self.pool = service.pool
        self.clock = service.clock

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
        live = self._sync_sessions(tree, rows, stored)  # a snapshot: sessions may end meanwhile
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
            # An EV known to draw nothing (full) gives nothing back by following its lower
            # limit: the others need not wait the settle time for it.
            quiet = [draws_nothing(c.tracked, svc.settle_grace) for c in first]
            await self._commit_intent(site_id, first, mark_decrease=False)
            results = await self._send_all(first)
            sent.extend(zip(first, results, strict=True))
            accepted_decrease = any(
                r == "Accepted" and c.previous is not None and c.limit < c.previous and not q
                for c, r, q in zip(first, results, quiet, strict=True)
            )
            if accepted_decrease:
                svc.decreased_at[site_id] = self.clock.monotonic()
                decreased = True
            if all(r == "Accepted" for r in results):
                increases = [c for c in changes if c not in decreases]
                if increases:
                    await self._commit_intent(site_id, increases, mark_decrease=decreased)
                    decreased = False  # stored with the intent
                    await self._settle(site_id)
                    if await self._sessions_changed(site_id, live):
                        # A session that started during the settle time draws its
                        # TxDefaultProfile share already: the increases planned without it
                        # could exceed the limit. The decreases stand; plan again with it.
                        svc.request_replan(site_id, "sessions_changed")
                        break
                results = await self._send_all(increases)
                sent.extend(zip(increases, results, strict=True))
                break
        reattached = await self._reattach(tree, live, reserved)
        sent.extend(reattached)
        current = {k: t for k, t in live.items() if svc.sessions.get(k) is t}  # not ended
        view = reporting.site_view(tree, reason, currents, current, self.clock.now())
        view.shifted = sorted(tou)
        view.deadlines_missed = sorted(k for k, feasible in tou.items() if not feasible)
        svc.views[site_id] = view
        await self._commit_state(site_id, current, view, decreased)
        duration_ms = (time.perf_counter() - started) * 1000
        await reporting.record(self.pool, tree, view, sent, reason, duration_ms, self.clock.now())
        if any(status == "Accepted" for _, status in reattached):
            svc.request_replan(site_id, "reattached")  # plan them normally at once
        return view

    # -- what is stored ------------------------------------------------------------

    async def _fenced(self, conn: Executor, site_id: str) -> None:
        """Raise :class:`PlannerLost` unless this node still holds the site's lease."""
        svc = self.service
        if not svc.leadership.holds(site_id):
            raise PlannerLost(site_id)
        lease = svc.leadership.lease(site_id)
        if lease is not None and not await lease_is_current(
            cast(asyncpg.Connection, conn), lease_name(site_id), lease.token
        ):
            raise PlannerLost(site_id)

    async def _commit_intent(
        self, site_id: str, sends: Sequence[ProfileSend], mark_decrease: bool
    ) -> None:
        """Store the limits about to be sent as pending, before they are sent."""
        if not sends and not mark_decrease:
            return
        told = [
            Told(
                s.tracked.charge_point_id,
                s.tracked.evse_id,
                s.tracked.transaction_id,
                s.tracked.phases,
                s.tracked.limit,
                pending_a=s.limit,
                assumed_a=s.tracked.assumed,
            )
            for s in sends
        ]
        svc = self.service
        async with self.pool.acquire() as conn, conn.transaction():
            await self._fenced(conn, site_id)
            await planner_state.save_told(conn, site_id, told)
            if mark_decrease:
                await planner_state.mark_decrease(
                    conn, site_id, svc.node_id, svc.leadership.token(site_id)
                )

    async def _commit_state(
        self, site_id: str, live: dict[str, Tracked], view: SiteView, decreased: bool
    ) -> None:
        """Store what every session of the site has now, and the view of the plan."""
        told = [
            Told(t.charge_point_id, t.evse_id, t.transaction_id, t.phases, t.limit, None, t.assumed)
            for t in live.values()
        ]
        svc = self.service
        token = svc.leadership.token(site_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._fenced(conn, site_id)
            await planner_state.save_told(conn, site_id, told)
            active = [(t.charge_point_id, t.evse_id, t.transaction_id) for t in live.values()]
            await planner_state.forget_ended(conn, site_id, active)
            if decreased:
                await planner_state.mark_decrease(conn, site_id, svc.node_id, token)
            await planner_state.save_view(conn, site_id, svc.node_id, token, view.as_dict())

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

    # -- sessions --------------------------------------------------------------------

    def _sync_sessions(
        self, tree: SiteTree, rows: Sequence[Any], stored: dict[tuple[str, int], StoredLimit]
    ) -> dict[str, Tracked]:
        """Track every active session of the site; forget those that ended."""
        svc = self.service
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
                    worst = worst_case(known, hardware_max(tree, cp))
                    told = [v for v in (known.limit_a, known.pending_a) if v is not None]
                    t.floor_limit = min(told) if told else None
                    if known.assumed_a is not None:
                        t.assumed = worst
                    else:
                        t.limit, t.confirmed = worst, False
                elif svc.fallbacks.defaults.get(cp) == (
                    fallback := svc.fallbacks.limit_for(tree, cp)
                ):
                    t.limit = fallback  # it starts under the TxDefaultProfile it accepted
                else:
                    t.assumed = hardware_max(tree, cp)
                svc.track(key, t)
            started = row["started_at"]
            t.rank = started.timestamp() if started is not None else self.clock.now().timestamp()
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

    async def _send_all(self, sends: Sequence[ProfileSend]) -> list[str]:
        return list(await asyncio.gather(*(self._send(s) for s in sends)))

    async def _send(self, s: ProfileSend) -> str:
        """Send one TxProfile; on anything but Accepted the session becomes uncontrolled."""
        t = s.tracked
        payload = profiles.tx_profile(s.protocol, t.evse_id, t.transaction_id, s.limit, t.phases)
        status = await self.call(t.charge_point_id, payload)
        if status == "Accepted":
            t.limit, t.assumed, t.changed_at = s.limit, None, self.clock.monotonic()
            t.changed_on = self.clock.now()
            t.confirmed, t.floor_limit = True, None
            if t.probing:  # look at what the EV says once it has had time to follow
                site_id = await self.service.site_of(t.charge_point_id)
                if site_id is not None:
                    self.service.replan_after(site_id, self.service.settle_grace, "probe_check")
        else:
            # Rejected: it keeps its old limit; unanswered: it may have taken the new one.
            t.assumed = max(s.limit, t.last_known_max(s.previous or 0.0))
        return status

    async def call(self, charge_point_id: str, payload: Any) -> str:
        # Profiles are planned in A; a W-only charger gets them in W (at the model's voltage).
        payload = await fit_for_charger(
            self.service.pool, charge_point_id, payload, NOMINAL_VOLTAGE
        )
        try:
            answer = await asyncio.wait_for(
                self.service.context.router.call(charge_point_id, payload),
                self.settings.smart_charging_call_timeout,
            )
        except TimeoutError:
            return "NoAnswer"
        except ChargerNotConnected:
            return "Offline"
        except (CallErrorReceived, WrongProtocolVersion):
            return "Error"
        return str(getattr(answer, "status", "Error"))

    async def _reattach(
        self, tree: SiteTree, tracked: dict[str, Tracked], reserved: dict[str, float]
    ) -> list[tuple[ProfileSend, str]]:
        """Offer uncontrolled sessions of online chargers exactly the load the plan set aside.

        Only sessions the last plan set aside (``reserved``) and still uncontrolled at that
        value: one found overdrawing while the plan was sent was not set aside yet.
        """
        svc = self.service
        sends = []
        for key, t in tracked.items():
            protocol: Protocol | None = svc.protocol_of(t.charge_point_id)
            if key not in reserved or t.assumed != reserved[key] or protocol is None:
                continue
            hardware = hardware_max(tree, t.charge_point_id)
            if t.measured is not None and max(t.measured) > t.assumed + 0.5:
                continue  # it does not keep to what it is given: leave it set aside
            target = min(t.assumed, hardware)
            if t.floor_limit is not None:
                # Resumed from a previous planner: the worst case set aside for it may be
                # more than it was really allowed (the set-aside loads of a site taken over
                # can add up to more than its limit); the lowest limit it may be enforcing
                # can only lower its draw. The re-plan that follows raises it, increases last.
                target = min(target, t.floor_limit)
            sends.append(ProfileSend(t, target, t.assumed, protocol))
        site_id = tree.site.site_id
        await self._commit_intent(site_id, sends, mark_decrease=False)
        results = await self._send_all(sends)
        return list(zip(sends, results, strict=True))
