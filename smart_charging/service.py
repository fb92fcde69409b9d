"""The real-time load manager: a CSMS :class:`~csms.services.Service`.

It follows committed events on the bus and re-plans a site when a session
starts or ends, a meter value shows a clear deviation (see
:mod:`smart_charging.tracking`), an EV stops drawing or draws again, a charger
goes offline or boots, the site's limits change through the API (including a
demand-response cut), and every ``smart_charging_interval`` seconds. Each site
has one worker task, so plans of one site never overlap and a slow charger only
delays its own site.

Across a cluster, each site is planned by one node only: the holder of the
site's lease (:mod:`smart_charging.leadership`). A trigger for a site this
node does not plan (an API call on this node) is passed on with Postgres
``NOTIFY smart_charging_replan``. How one plan is made and sent:
:mod:`smart_charging.planning`. The profiles a charger falls back on without
the CSMS are sent first (:mod:`smart_charging.fallback`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter

from csms.cluster.leases import Lease
from csms.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatusChanged,
    Event,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.services import ServiceContext
from csms.storage import Executor
from csms.storage.listen import listen_forever
from smart_charging import planner_state, store
from smart_charging.fallback import FallbackProfiles
from smart_charging.leadership import SiteLeadership, held_lock_keys
from smart_charging.model import SiteTree, session_key
from smart_charging.planning import PlannerLost, SitePlanning
from smart_charging.reporting import SiteView
from smart_charging.tou_plan import SitePlans
from smart_charging.tracking import (
    Tracked,
    Verdict,
    currents_per_line,
    judge_sample,
    note_draw,
    note_state,
    predates_change,
)
from smart_charging.urgency import urgency_class

log = structlog.get_logger(__name__)

OBSERVED_MARGIN_A = 1.0  # headroom kept above what an EV that draws little really draws
SAMPLE_GRACE_S = 1.0  # after a limit change + settle: a sample may still show the old draw
SAMPLE_TRUST_S = 900.0  # how long after a change a sample's own time can make it predate it
REPLAN_CHANNEL = "smart_charging_replan"  # NOTIFY payload: "<site_id>\n<reason>"


class SmartChargingService:
    """Keeps every site under its limits (see the module docstring)."""

    name = "smart_charging"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.pool = context.pool
        self.settings = context.settings
        self.clock = context.clock  # every time read here (settle, idle, probes, periodic)
        manager = context.leases
        self.node_id: str = context.node_id
        self.sessions: dict[str, Tracked] = {}  # session key (cp/evse) -> state
        self._by_transaction: dict[tuple[str, str], Tracked] = {}  # (cp, tx) -> same state
        self.views: dict[str, SiteView] = {}
        self.fallbacks = FallbackProfiles(self)
        self.leadership = SiteLeadership(manager, self._site_gained, self._site_lost)
        self.planning = SitePlanning(self)
        self.tou = SitePlans(self.request_replan, self.clock)  # time-of-use plans, one per site
        self._site_of: dict[str, str | None] = {}  # charger -> site (cache, None = none)
        # Chargers connected to another node (from Postgres): id -> their OCPP version.
        self._remote: dict[str, Protocol] = {}
        # When a decrease was last accepted per site (monotonic): no increase before it has
        # settled, even one planned in a later round, a later re-plan or by another node.
        self.decreased_at: dict[str, float] = {}
        self._reasons: dict[str, set[str]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription = context.bus.subscribe("smart_charging")

    def api_routers(self) -> Sequence[APIRouter]:
        from smart_charging.api import build_router

        return [build_router(self)]

    async def start(self) -> None:
        # Re-plans asked on other nodes; a request missed while not listening is
        # caught up by the periodic plan.
        listen = listen_forever(self.context.dsn, REPLAN_CHANNEL, self._on_notify)
        self._tasks.append(asyncio.create_task(listen))
        await self._take_sites()  # before chargers connect: this node may plan at once
        self._tasks.append(asyncio.create_task(self._consume()))
        self._tasks.append(asyncio.create_task(self._periodic()))
        self._tasks.append(asyncio.create_task(self._lead()))

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
        self.tou.close()
        with contextlib.suppress(Exception):
            await self.leadership.release_all()  # another node takes the sites over at once

    # -- leadership -------------------------------------------------------------

    async def _lead(self) -> None:
        while True:
            await asyncio.sleep(self.settings.smart_charging_lease_interval)
            try:
                await self._take_sites()
            except Exception:
                log.exception("smart_charging.leadership_failed")

    async def _take_sites(self) -> None:
        async with self.pool.acquire() as conn:
            sites = await store.list_sites(conn)
            busy = await held_lock_keys(conn)
        await self.leadership.refresh([s.site_id for s in sites], busy)

    async def plans(self, site_id: str) -> bool:
        """Whether this node plans ``site_id``, taking it first if nobody does."""
        if not self.leadership.holds(site_id):
            await self._take_sites()
        return self.leadership.holds(site_id)

    async def _site_gained(self, site_id: str, lease: Lease | None) -> None:
        """This node plans ``site_id`` from now on: resume from what was stored."""
        async with self.pool.acquire() as conn:
            since = await planner_state.seconds_since_decrease(conn, site_id)
            tree = await store.load_tree(conn, site_id)
            chargers = [c.charge_point_id for c in tree.chargers] if tree else []
            accepted = await planner_state.load_fallbacks(conn, chargers)
        if since is not None:
            self.decreased_at[site_id] = self.clock.monotonic() - since
        for cp, (max_a, default_a) in accepted.items():
            if max_a is not None:
                self.fallbacks.maxes[cp] = max_a
            if default_a is not None:
                self.fallbacks.defaults[cp] = default_a
        self.request_replan(site_id, "planner_takeover")

    def _site_lost(self, site_id: str) -> None:
        """Another node plans ``site_id`` now: stop, forget its sessions."""
        worker = self._workers.pop(site_id, None)
        if worker is not None:
            worker.cancel()
        self._wake.pop(site_id, None)
        self._reasons.pop(site_id, None)
        self.views.pop(site_id, None)
        self.tou.forget(site_id)
        self.decreased_at.pop(site_id, None)
        for key, t in list(self.sessions.items()):
            if self._site_of.get(t.charge_point_id) == site_id:
                self.untrack(key)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        site_id, _, reason = str(payload).partition("\n")
        if self.leadership.holds(site_id):
            self.request_replan(site_id, reason or "requested")

    async def refresh_presence(self, conn: Executor, chargers: Sequence[str]) -> None:
        """Which of ``chargers`` another node holds, and their OCPP version."""
        rows = await conn.fetch(
            "SELECT charge_point_id, protocol FROM chargers "
            "WHERE connected AND protocol IS NOT NULL AND charge_point_id = ANY($1::text[])",
            list(chargers),
        )
        for cp in chargers:
            self._remote.pop(cp, None)
        for r in rows:
            with contextlib.suppress(ValueError):
                self._remote[r["charge_point_id"]] = Protocol(r["protocol"])

    def protocol_of(self, charge_point_id: str) -> Protocol | None:
        """The charger's OCPP version if it is connected to this node or another one.

        A charger on another node is reached through the command router; a router
        that cannot reach it answers ChargerNotConnected, and the load manager then
        sets its sessions aside at their last known maximum.
        """
        connection = self.context.registry.get(charge_point_id)
        if connection is not None:
            return connection.protocol
        return self._remote.get(charge_point_id)

    async def call(self, charge_point_id: str, payload: Any) -> str:
        """Send a command and reduce the outcome to a status (Accepted, Offline, ...)."""
        return await self.planning.call(charge_point_id, payload)

    async def replan(self, site_id: str, reason: str) -> SiteView | None:
        """Plan ``site_id`` now if this node plans it (see :mod:`smart_charging.planning`)."""
        try:
            return await self.planning.replan(site_id, reason)
        except PlannerLost:
            log.warning("smart_charging.planner_lost", site_id=site_id, node=self.node_id)
            return None

    async def stored_view(self, site_id: str) -> dict[str, Any] | None:
        """The last view of a site as its planner (any node) stored it."""
        async with self.pool.acquire() as conn:
            return await planner_state.load_view(conn, site_id)

    async def ensure_fallbacks(self, tree: SiteTree, reason: str) -> None:
        """Send the failsafe profiles chargers lack; store what they accepted."""
        chargers = [c.charge_point_id for c in tree.chargers]
        f = self.fallbacks
        before = {cp: (f.maxes.get(cp), f.defaults.get(cp)) for cp in chargers}
        await f.ensure(tree, reason)
        after = {cp: (f.maxes.get(cp), f.defaults.get(cp)) for cp in chargers}
        changed = {cp: value for cp, value in after.items() if value != before[cp]}
        if changed:
            async with self.pool.acquire() as conn:
                await planner_state.save_fallbacks(conn, changed)

    def urgency_of(self, t: Tracked, tree: SiteTree, now: datetime) -> int:
        """The session's deadline urgency class (:mod:`smart_charging.urgency`)."""
        from smart_charging.planning import hardware_max

        return urgency_class(
            now,
            t.departure_at,
            t.energy_wanted_wh,
            t.energy_wh,
            hardware_max(tree, t.charge_point_id),
            t.phases,
            charging=bool(t.limit) and t.assumed is None and not t.idle,
        )

    async def set_charging_needs(
        self,
        charge_point_id: str,
        transaction_id: str,
        departure_at: datetime | None,
        energy_wanted_wh: float | None,
    ) -> None:
        """Hook for what the EV says it needs (ISO 15118 NotifyEVChargingNeeds, a token's
        defaults): its departure time and energy wanted, kept with the session's
        preferences (an operator-set priority stays) and planned at once."""
        async with self.pool.acquire() as conn:
            await store.put_needs(conn, charge_point_id, transaction_id, departure_at,
                                  energy_wanted_wh)  # fmt: skip
        site_id = await self.site_of(charge_point_id)
        if site_id is not None:
            self.request_replan(site_id, "charging_needs")

    # -- triggers ----------------------------------------------------------------

    def _replan_here(self, site_id: str, reason: str) -> None:
        """A committed event concerns ``site_id``: re-plan if this node plans it (every
        node sees every node's events, so the planner sees this one too)."""
        if self.leadership.holds(site_id):
            self.request_replan(site_id, reason)

    def request_replan(self, site_id: str, reason: str) -> None:
        """Re-plan ``site_id`` soon (coalesced), here or on the node that plans it."""
        if not self.leadership.holds(site_id):
            task = asyncio.create_task(self._pass_on(site_id, reason))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
            return
        self._reasons.setdefault(site_id, set()).add(reason)
        wake = self._wake.setdefault(site_id, asyncio.Event())
        wake.set()
        worker = self._workers.get(site_id)
        if worker is None or worker.done():
            self._workers[site_id] = asyncio.create_task(self._site_worker(site_id, wake))

    async def _pass_on(self, site_id: str, reason: str) -> None:
        """A trigger for a site this node does not plan: take it if nobody does (a new
        site), else wake the node that plans it."""
        try:
            await self._take_sites()
        except Exception:
            log.warning("smart_charging.leadership_failed", exc_info=True)
        if self.leadership.holds(site_id):
            self.request_replan(site_id, reason)
            return
        try:
            await self.pool.execute(
                "SELECT pg_notify($1, $2)", REPLAN_CHANNEL, f"{site_id}\n{reason}"
            )
        except Exception:  # the periodic plan catches up
            log.warning("smart_charging.notify_failed", site_id=site_id, exc_info=True)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    def remember_site(self, charge_point_id: str, site_id: str) -> None:
        self._site_of[charge_point_id] = site_id

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
            await self.clock.sleep(self.settings.smart_charging_interval)
            try:
                for site_id in self.leadership.sites():
                    self.request_replan(site_id, "periodic")
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
                self._replan_here(site_id, "session_started")
            elif isinstance(event, SessionEnded):
                self._drop_transaction(cp, event.transaction_id)
                self._replan_here(site_id, "session_ended")
            else:
                verdict = self._measure(event)
                if isinstance(event, SessionUpdated) and event.charging_state is not None:
                    # 2.0.1 says what the EV does: SuspendedEV gives the share back,
                    # Charging brings an idle or probed session back at once.
                    state = self._suspended(
                        cp, event.evse_id, event.charging_state, event.transaction_id
                    )
                    verdict = state if state is not Verdict.STEADY else verdict
                if verdict is not None and verdict is not Verdict.STEADY:
                    self._replan_here(site_id, verdict.value)
        elif isinstance(event, ConnectorStatusChanged) and event.detail is not None:
            # 1.6 StatusNotification: SuspendedEV / Charging of the connector's session.
            verdict = self._suspended(cp, event.evse_id, event.detail, None)
            if verdict is not Verdict.STEADY:
                site_id = await self.site_of(cp)
                if site_id is not None:
                    self._replan_here(site_id, verdict.value)
        elif isinstance(event, ChargerDisconnected):
            site_id = await self.site_of(cp)
            await self._forget_fallbacks(cp)
            if site_id is not None:
                self._replan_here(site_id, "charger_offline")
        elif isinstance(event, ChargerBooted | ChargerConnected):
            await self._forget_fallbacks(cp, retry_now=True)  # a reboot may lose every profile
            site_id = await self.site_of(cp)
            if site_id is not None:
                self._replan_here(site_id, event.type)

    async def _forget_fallbacks(self, charge_point_id: str, retry_now: bool = False) -> None:
        self.fallbacks.forget(charge_point_id, retry_now)
        site_id = await self.site_of(charge_point_id)
        if site_id is not None and self.leadership.holds(site_id):  # once, by its planner
            async with self.pool.acquire() as conn:
                await planner_state.forget_fallbacks(conn, charge_point_id)

    def _suspended(
        self, charge_point_id: str, evse_id: int | None, state: str, transaction_id: str | None
    ) -> Verdict:
        """The EV's state as the charger reports it (SuspendedEV, Charging, ...)."""
        if transaction_id is not None:  # 2.0.1 names the EVSE in a transaction's first event only
            t = self._by_transaction.get((charge_point_id, transaction_id))
        else:
            t = self.sessions.get(session_key(charge_point_id, evse_id or 0))
        if t is None or t.assumed is not None or not t.limit:
            return Verdict.STEADY  # paused or not steered: SuspendedEV says nothing
        now = self.clock.monotonic()
        settling = now - t.changed_at < self.settle_grace
        if settling and state == "SuspendedEV":  # judged once the EV has had time to follow
            wait = t.changed_at + self.settle_grace - now
            task = asyncio.create_task(self._recheck_later(charge_point_id, wait))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        return note_state(t, state, now, settling)

    async def _recheck_later(self, charge_point_id: str, seconds: float) -> None:
        await self.clock.sleep(seconds)
        site_id = await self.site_of(charge_point_id)
        if site_id is not None:
            self._replan_here(site_id, "ev_suspended")

    def replan_after(self, site_id: str, seconds: float, reason: str) -> None:
        """Re-plan ``site_id`` in ``seconds`` of the service's clock (a probe's end)."""
        task = asyncio.create_task(self._replan_later(site_id, seconds, reason))
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    async def _replan_later(self, site_id: str, seconds: float, reason: str) -> None:
        await self.clock.sleep(seconds)
        self._replan_here(site_id, reason)

    @property
    def settle_grace(self) -> float:
        """Simulated s an EV has to follow a new limit before what it shows is judged."""
        return self.settings.smart_charging_settle + SAMPLE_GRACE_S

    def track(self, key: str, t: Tracked) -> None:
        old = self.sessions.get(key)
        if old is not None:
            self.untrack(key)
        self.sessions[key] = t
        self._by_transaction[(t.charge_point_id, t.transaction_id)] = t

    def untrack(self, key: str) -> None:
        t = self.sessions.pop(key)
        index = (t.charge_point_id, t.transaction_id)
        if self._by_transaction.get(index) is t:
            del self._by_transaction[index]

    def _drop_transaction(self, charge_point_id: str, transaction_id: str) -> None:
        t = self._by_transaction.get((charge_point_id, transaction_id))
        if t is not None:
            key = session_key(t.charge_point_id, t.evse_id)
            if self.sessions.get(key) is t:
                self.untrack(key)
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
        grace = self.settle_grace
        now = self.clock.monotonic()
        settling = now - tracked.changed_at < grace or predates_change(
            tracked, event.samples, grace, now, SAMPLE_TRUST_S
        )
        verdict = judge_sample(
            tracked,
            measured,
            offered,
            self.settings.smart_charging_deviation_a,
            OBSERVED_MARGIN_A,
            settling=settling,
        )
        if settling or verdict is Verdict.OVERDRAW:
            return verdict
        idle = note_draw(tracked, measured, offered, now, self.settings.smart_charging_idle_after)
        return idle if idle is not Verdict.STEADY else verdict
