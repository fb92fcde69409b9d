"""The real-time load manager: a CSMS :class:`~csms.services.Service`.

It follows committed events on the bus and re-plans a site when a session
starts or ends, a meter value shows a clear deviation (see
:mod:`smart_charging.tracking`), a charger goes offline or boots, the site's
limits change through the API (including a demand-response cut), and every
``smart_charging_interval`` seconds. Each site has one worker task, so plans
of one site never overlap and a slow charger only delays its own site.

A re-plan (:meth:`SmartChargingService.replan`):

1. reads the site's tree and active sessions from Postgres;
2. allocates (:func:`smart_charging.allocation.allocate`); sessions that
   cannot be steered are set aside at their last known maximum; a session
   with a departure time on a site with prices gets a time-of-use schedule
   capped at its allocation (:func:`smart_charging.shifting.session_plan`);
3. sends the limits that went *down* and waits for the answers; a rejected
   or unanswered one makes its session uncontrolled, and the plan is made
   again with that load set aside, before anything goes *up*;
4. only then sends the limits that went up;
5. tries to bring uncontrolled sessions of online chargers back under
   control with a profile at exactly the load set aside for them;
6. records every profile sent and the plan itself as events (topic
   ``load-management``) and keeps a per-site view for the API.

Only changed limits (or schedules) are sent. The profiles a charger falls back
on without the CSMS are sent first (:mod:`smart_charging.fallback`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter

from csms.connection import CallErrorReceived
from csms.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    Event,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.interop.profiles import fit_for_charger
from csms.router import ChargerNotConnected, WrongProtocolVersion
from csms.services import ServiceContext
from smart_charging import profiles, reporting, shifting, store
from smart_charging.allocation import NOMINAL_VOLTAGE, allocate
from smart_charging.fallback import FallbackProfiles
from smart_charging.model import LiveSession, SiteTree, build_problem, session_key
from smart_charging.reporting import ProfileSend, SiteView
from smart_charging.tracking import Tracked, Verdict, currents_per_line, judge_sample

log = structlog.get_logger(__name__)

OBSERVED_MARGIN_A = 1.0  # headroom kept above what an EV that draws little really draws
SAMPLE_GRACE_S = 1.0  # after a limit change + settle: a sample may still show the old draw
_MAX_ROUNDS = 4  # decrease rounds before giving up on a plan (each failure sets load aside)
SCHEDULE_TOLERANCE_S = 300.0  # a time-of-use schedule moved by less is not sent again


def utcnow() -> datetime:
    return datetime.now(UTC)


class SmartChargingService:
    """Keeps every site under its limits (see the module docstring)."""

    name = "smart_charging"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.pool = context.pool
        self.settings = context.settings
        self.sessions: dict[str, Tracked] = {}  # session key (cp/evse) -> state
        self._by_transaction: dict[tuple[str, str], Tracked] = {}  # (cp, tx) -> same state
        self.views: dict[str, SiteView] = {}
        self.fallbacks = FallbackProfiles(self)
        self._site_of: dict[str, str | None] = {}  # charger -> site (cache, None = none)
        # When a decrease was last accepted per site: no increase before it has settled,
        # even one planned in a later round or a later re-plan.
        self._decreased_at: dict[str, float] = {}
        self._reasons: dict[str, set[str]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription = context.bus.subscribe("smart_charging")

    def api_routers(self) -> Sequence[APIRouter]:
        from smart_charging.api import build_router

        return [build_router(self)]

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._consume()))
        self._tasks.append(asyncio.create_task(self._periodic()))

    async def stop(self) -> None:
        self.context.bus.unsubscribe(self._subscription)
        tasks = [*self._tasks, *self._workers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._workers.clear()

    # -- triggers ----------------------------------------------------------------

    def request_replan(self, site_id: str, reason: str) -> None:
        """Re-plan ``site_id`` soon (coalesced with other requests for it)."""
        self._reasons.setdefault(site_id, set()).add(reason)
        wake = self._wake.setdefault(site_id, asyncio.Event())
        wake.set()
        worker = self._workers.get(site_id)
        if worker is None or worker.done():
            self._workers[site_id] = asyncio.create_task(self._site_worker(site_id, wake))

    def forget_charger_site(self, charge_point_id: str) -> None:
        """The API moved a charger: read its site again on the next event."""
        self._site_of.pop(charge_point_id, None)
        self.fallbacks.forget(charge_point_id)

    async def site_of(self, charge_point_id: str) -> str | None:
        if charge_point_id not in self._site_of:
            self._site_of[charge_point_id] = await store.site_of(self.pool, charge_point_id)
        return self._site_of[charge_point_id]

    async def _site_worker(self, site_id: str, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            await asyncio.sleep(self.settings.smart_charging_debounce)  # coalesce a burst
            wake.clear()
            reasons = self._reasons.pop(site_id, set())
            try:
                await self.replan(site_id, ",".join(sorted(reasons)) or "requested")
            except Exception:
                log.exception("smart_charging.replan_failed", site_id=site_id)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.settings.smart_charging_interval)
            try:
                for site in await store.list_sites(self.pool):
                    self.request_replan(site.site_id, "periodic")
            except Exception:
                log.exception("smart_charging.periodic_failed")

    async def _consume(self) -> None:
        while True:
            event = await self._subscription.get()
            try:
                await self._on_event(event)
            except Exception:
                log.exception("smart_charging.event_failed", type=event.type)

    async def _on_event(self, event: Event) -> None:
        cp = event.charge_point_id
        if isinstance(event, SessionStarted | SessionUpdated | SessionEnded | MeterSampled):
            site_id = await self.site_of(cp)
            if site_id is None:
                return
            if isinstance(event, SessionStarted):
                self.request_replan(site_id, "session_started")
            elif isinstance(event, SessionEnded):
                self._drop_transaction(cp, event.transaction_id)
                self.request_replan(site_id, "session_ended")
            else:
                verdict = self._measure(event)
                if verdict is not None and verdict is not Verdict.STEADY:
                    self.request_replan(site_id, verdict.value)
        elif isinstance(event, ChargerDisconnected):
            site_id = await self.site_of(cp)
            self.fallbacks.forget(cp)
            if site_id is not None:
                self.request_replan(site_id, "charger_offline")
        elif isinstance(event, ChargerBooted | ChargerConnected):
            self.fallbacks.forget(cp, retry_now=True)  # a reboot may have lost every profile
            site_id = await self.site_of(cp)
            if site_id is not None:
                self.request_replan(site_id, event.type)

    def _track(self, key: str, t: Tracked) -> None:
        old = self.sessions.get(key)
        if old is not None:
            self._untrack(key)
        self.sessions[key] = t
        self._by_transaction[(t.charge_point_id, t.transaction_id)] = t

    def _untrack(self, key: str) -> None:
        t = self.sessions.pop(key)
        index = (t.charge_point_id, t.transaction_id)
        if self._by_transaction.get(index) is t:
            del self._by_transaction[index]

    def _drop_transaction(self, charge_point_id: str, transaction_id: str) -> None:
        t = self._by_transaction.get((charge_point_id, transaction_id))
        if t is not None:
            key = session_key(t.charge_point_id, t.evse_id)
            if self.sessions.get(key) is t:
                self._untrack(key)
            else:
                del self._by_transaction[(charge_point_id, transaction_id)]

    def _measure(self, event: SessionUpdated | MeterSampled) -> Verdict | None:
        measured = currents_per_line(event.samples)
        if measured is None or event.transaction_id is None:
            return None
        tracked = self._by_transaction.get((event.charge_point_id, event.transaction_id))
        if tracked is None:
            return None
        offered = tracked.limit if tracked.limit is not None else tracked.assumed
        if offered is None or tracked.assumed is not None:
            tracked.measured = measured  # not steered now: the plan sets aside its maximum
            return None
        # A sample taken before the EV followed its new limit says nothing about it.
        grace = self.settings.smart_charging_settle + SAMPLE_GRACE_S
        return judge_sample(
            tracked,
            measured,
            offered,
            self.settings.smart_charging_deviation_a,
            OBSERVED_MARGIN_A,
            settling=time.monotonic() - tracked.changed_at < grace,
        )

    # -- planning ----------------------------------------------------------------

    async def replan(self, site_id: str, reason: str) -> SiteView | None:
        """Plan ``site_id`` now and send what changed (see the module docstring)."""
        started = time.perf_counter()
        async with self.pool.acquire() as conn:
            tree = await store.load_tree(conn, site_id)
            rows = await store.active_sessions(conn, site_id) if tree else []
        if tree is None:
            self.views.pop(site_id, None)
            return None
        for place in tree.chargers:
            self._site_of[place.charge_point_id] = site_id
        await self.fallbacks.ensure(tree, reason)
        live = self._sync_sessions(tree, rows)  # a snapshot: events may end sessions meanwhile
        sent: list[tuple[ProfileSend, str]] = []
        currents: dict[str, float] = {}
        reserved: dict[str, float] = {}
        tou: dict[str, bool] = {}
        for _ in range(_MAX_ROUNDS):
            currents, reserved, changes, tou = await self._plan(tree, live)
            decreases = [c for c in changes if c.previous is None or c.limit < c.previous]
            results = await self._send_all(decreases)
            sent.extend(zip(decreases, results, strict=True))
            if any(r == "Accepted" for r in results):
                self._decreased_at[site_id] = time.monotonic()
            if all(r == "Accepted" for r in results):
                increases = [c for c in changes if c not in decreases]
                if increases:
                    await self._settle(site_id)
                results = await self._send_all(increases)
                sent.extend(zip(increases, results, strict=True))
                break
        reattached = await self._reattach(tree, live, reserved)
        sent.extend(reattached)
        current = {k: t for k, t in live.items() if self.sessions.get(k) is t}  # not ended
        view = reporting.site_view(tree, reason, currents, current, utcnow())
        view.shifted = sorted(tou)
        view.deadlines_missed = sorted(k for k, feasible in tou.items() if not feasible)
        self.views[site_id] = view
        duration_ms = (time.perf_counter() - started) * 1000
        await reporting.record(self.pool, tree, view, sent, reason, duration_ms, utcnow())
        if any(status == "Accepted" for _, status in reattached):
            self.request_replan(site_id, "reattached")  # plan them normally at once
        return view

    async def _settle(self, site_id: str) -> None:
        """Let the EVs follow the site's last accepted decreases before anyone gets more."""
        decreased_at = self._decreased_at.get(site_id)
        if decreased_at is not None:
            wait = decreased_at + self.settings.smart_charging_settle - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def _sync_sessions(self, tree: SiteTree, rows: Sequence[Any]) -> dict[str, Tracked]:
        """Track every active session of the site; forget those that ended."""
        live: dict[str, Tracked] = {}
        # One session per EVSE: of stale rows (a stop never received), the latest wins.
        latest = {session_key(r["charge_point_id"], r["evse_id"]): r for r in rows}
        for key, row in latest.items():
            t = self.sessions.get(key)
            if t is None or t.transaction_id != row["transaction_id"]:
                t = Tracked(row["charge_point_id"], row["evse_id"], row["transaction_id"])
                fallback = self.fallbacks.limit_for(tree, t.charge_point_id)
                if self.fallbacks.defaults.get(t.charge_point_id) == fallback:
                    t.limit = fallback  # it starts under the TxDefaultProfile it accepted
                else:
                    t.assumed = self._hardware_max(tree, t.charge_point_id)
                self._track(key, t)
            started = row["started_at"]
            t.rank = started.timestamp() if started is not None else time.time()
            t.priority = row["priority"]
            t.departure_at = row["departure_at"]
            t.energy_wanted_wh = row["energy_wanted_wh"]
            t.energy_wh = row["energy_wh"]
            live[key] = t
        site_chargers = {c.charge_point_id for c in tree.chargers}
        for key, t in list(self.sessions.items()):
            if t.charge_point_id in site_chargers and key not in live:
                self._untrack(key)
        return live

    @staticmethod
    def _hardware_max(tree: SiteTree, charge_point_id: str) -> float:
        for c in tree.chargers:
            if c.charge_point_id == charge_point_id:
                return c.connector_max_current_a or c.max_current_a
        return 0.0

    async def _plan(
        self, tree: SiteTree, tracked: dict[str, Tracked]
    ) -> tuple[dict[str, float], dict[str, float], list[ProfileSend], dict[str, bool]]:
        """Allocate; return the currents, the load set aside per session, what changed, and
        the sessions on a time-of-use schedule (key -> whether their deadline can be met)."""
        now = utcnow()
        live = []
        for t in tracked.values():
            online = self.context.registry.get(t.charge_point_id) is not None
            if not online and t.assumed is None:
                t.assumed = t.last_known_max(self.fallbacks.limit_for(tree, t.charge_point_id))
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
                )
            )
        problem = build_problem(tree, live, now)
        # In a thread: a big site takes a second of CPU, and chargers must still be answered
        # meanwhile (the GIL is handed back to the event loop every few milliseconds).
        allocation = await asyncio.to_thread(allocate, problem.nodes, problem.sessions)
        currents = dict(allocation.currents)
        changes = []
        tou: dict[str, bool] = {}
        wanted = [t.departure_at for t in tracked.values() if t.energy_wanted_wh is not None]
        intervals = shifting.site_intervals(tree.prices, now, [d for d in wanted if d])
        for key, t in tracked.items():
            protocol = self.protocol_of(t.charge_point_id)
            if key not in currents or t.assumed is not None or protocol is None:
                continue
            limit = currents[key]
            plan = shifting.session_plan(
                intervals,
                now,
                t.departure_at,
                t.energy_wanted_wh,
                t.energy_wh,
                limit,
                t.phases,
                tree.site.min_current_a,
            )
            if plan is not None:
                tou[key] = plan.feasible
            periods = plan.periods if plan is not None and len(plan.periods) > 1 else None
            send = ProfileSend(t, limit, t.limit, protocol, periods, now if periods else None)
            if (
                t.limit is None
                or abs(limit - t.limit) >= 0.05
                or not shifting.same_schedule(
                    send.absolute_schedule(), t.schedule, SCHEDULE_TOLERANCE_S
                )
            ):
                changes.append(send)
        return currents, dict(problem.reserved), changes, tou

    def protocol_of(self, charge_point_id: str) -> Protocol | None:
        connection = self.context.registry.get(charge_point_id)
        return connection.protocol if connection is not None else None

    async def _send_all(self, sends: Sequence[ProfileSend]) -> list[str]:
        return list(await asyncio.gather(*(self._send(s) for s in sends)))

    async def _send(self, s: ProfileSend) -> str:
        """Send one TxProfile; on anything but Accepted the session becomes uncontrolled."""
        t = s.tracked
        payload = profiles.tx_profile(
            s.protocol, t.evse_id, t.transaction_id, s.limit, t.phases, s.periods, s.start
        )
        status = await self.call(t.charge_point_id, payload)
        if status == "Accepted":
            t.limit, t.assumed, t.changed_at = s.limit, None, time.monotonic()
            t.schedule = s.absolute_schedule()
        else:
            # Rejected: it keeps its old limit; unanswered: it may have taken the new one.
            t.assumed = max(s.limit, t.last_known_max(s.previous or 0.0))
        return status

    async def call(self, charge_point_id: str, payload: Any) -> str:
        # Profiles are planned in A; a W-only charger gets them in W (at the model's voltage).
        payload = await fit_for_charger(self.pool, charge_point_id, payload, NOMINAL_VOLTAGE)
        try:
            answer = await asyncio.wait_for(
                self.context.router.call(charge_point_id, payload),
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
        sends = []
        for key, t in tracked.items():
            protocol = self.protocol_of(t.charge_point_id)
            if key not in reserved or t.assumed != reserved[key] or protocol is None:
                continue
            hardware = self._hardware_max(tree, t.charge_point_id)
            if t.measured is not None and max(t.measured) > t.assumed + 0.5:
                continue  # it does not keep to what it is given: leave it set aside
            sends.append(ProfileSend(t, min(t.assumed, hardware), t.assumed, protocol))
        results = await self._send_all(sends)
        return list(zip(sends, results, strict=True))
