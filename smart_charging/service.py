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
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter

from csms.cluster.feed import FeedRow
from csms.cluster.leases import Lease
from csms.events import (
    ChargerDisconnected,
    MeterSampled,
    Protocol,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.services import ServiceContext
from csms.storage.listen import listen_forever
from smart_charging import observing, planner_state, store
from smart_charging.early import EarlyEvents
from smart_charging.fallback import FallbackProfiles
from smart_charging.leadership import SiteLeadership, held_lock_keys
from smart_charging.model import SiteTree, session_key
from smart_charging.observing import OBSERVED_MARGIN_A, SAMPLE_GRACE_S, SAMPLE_TRUST_S
from smart_charging.planning import SitePlanning
from smart_charging.policies import order_key
from smart_charging.reporting import SiteView
from smart_charging.sending import PlannerLost
from smart_charging.session_sync import hardware_max
from smart_charging.tou_plan import SitePlans
from smart_charging.tracking import Tracked, Verdict

log = structlog.get_logger(__name__)

__all__ = ["OBSERVED_MARGIN_A", "SAMPLE_GRACE_S", "SAMPLE_TRUST_S", "SmartChargingService"]
REPLAN_CHANNEL = "smart_charging_replan"  # NOTIFY payload: "<site_id>\n<reason>"


# Re-plans not debounced: a session waits for its share, or capacity given back waits.
# observing.on_event ignores these for a charger without a site (site_of is None). Not
# statuses: their EV state is applied to a tracked session before the site is looked up.
_SITE_EVENTS = frozenset(
    {
        SessionStarted.type,
        SessionUpdated.type,
        SessionEnded.type,
        MeterSampled.type,
        ChargerDisconnected.type,
    }
)
_AT_ONCE = frozenset({"session_started", "session_ended", "ev_idle", "ev_suspended"})


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
        self.by_transaction: dict[tuple[str, str], Tracked] = {}  # (cp, tx) -> same state
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
        self._planning_lock: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription = context.bus.subscribe("smart_charging", self._wants)
        # Starts and ends this node commits: planned at their commit (early.py).
        self.early = EarlyEvents(self)
        context.bus.committed_here.append(self.early.committed)

    def _wants(self, row: FeedRow) -> bool:
        """Not the meter values of a charger known to be at no site: they change no plan."""
        if row.type in _SITE_EVENTS:
            return self._site_of.get(row.charge_point_id, "") is not None
        return True

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
        with contextlib.suppress(ValueError):
            self.context.bus.committed_here.remove(self.early.committed)
        tasks = [*self._tasks, *self._workers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._workers.clear()
        await self.planning.finish()  # the last plans' state, before the sites are released
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

    def note_presence(self, chargers: Sequence[str], connected: Mapping[str, str]) -> None:
        """Which of ``chargers`` are connected (to this node or another: ``connected``,
        from Postgres), with their OCPP version."""
        for cp in chargers:
            self._remote.pop(cp, None)
        for cp, protocol in connected.items():
            with contextlib.suppress(ValueError):
                self._remote[cp] = Protocol(protocol)

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
        return await self.planning.sender.call(charge_point_id, payload)

    async def replan(self, site_id: str, reason: str) -> SiteView | None:
        """Plan ``site_id`` now if this node plans it (see :mod:`smart_charging.planning`).

        One plan of a site at a time, whoever asks (its worker, the API's first view):
        two overlapping plans could each send increases the other did not count.
        """
        try:
            async with self._planning_lock.setdefault(site_id, asyncio.Lock()):
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
        """The session's order key under its site's policy (:mod:`smart_charging.policies`;
        ``fair``: the deadline urgency class of :mod:`smart_charging.urgency`)."""
        return order_key(
            tree.site.allocation_policy,
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

    def replan_here(self, site_id: str, reason: str) -> None:
        """A committed event concerns ``site_id``: re-plan if this node plans it (every
        node sees every node's events, so the planner sees this one too)."""
        if self.leadership.holds(site_id):
            self.request_replan(site_id, reason)

    def request_replan(self, site_id: str, reason: str) -> None:
        """Re-plan ``site_id`` soon (coalesced), here or on the node that plans it."""
        if not self.leadership.holds(site_id):
            self.spawn(self._pass_on(site_id, reason))
            return
        self._reasons.setdefault(site_id, set()).add(reason)
        wake = self._wake.setdefault(site_id, asyncio.Event())
        wake.set()
        worker = self._workers.get(site_id)
        if worker is None or worker.done():
            self._workers[site_id] = asyncio.create_task(self._site_worker(site_id, wake))

    def pending_reasons(self, site_id: str) -> frozenset[str]:
        """Why ``site_id`` is to be planned again (requests since its plan started)."""
        return frozenset(self._reasons.get(site_id, ()))

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

    def cached_site(self, charge_point_id: str) -> str | None:
        """The charger's site if this process knows it already (None: unknown or none)."""
        return self._site_of.get(charge_point_id)

    async def site_of(self, charge_point_id: str) -> str | None:
        if charge_point_id not in self._site_of:
            self._site_of[charge_point_id] = await store.site_of(self.pool, charge_point_id)
        return self._site_of[charge_point_id]

    async def _site_worker(self, site_id: str, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            if not _AT_ONCE & self._reasons.get(site_id, set()):
                await asyncio.sleep(self.settings.smart_charging_debounce)  # coalesce a burst
            # else at once: a new session waits at its TxDefault (maybe 0 A) for its share,
            # and what a departed or full EV gave back waits for the plan to be used
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
                await observing.on_event(self, event)
            except Exception:
                log.exception("smart_charging.event_failed", type=event.type)

    def replan_after(self, site_id: str, seconds: float, reason: str) -> None:
        """Re-plan ``site_id`` in ``seconds`` of the service's clock (a probe's end)."""
        self.spawn(self._replan_later(site_id, seconds, reason))

    async def _replan_later(self, site_id: str, seconds: float, reason: str) -> None:
        await self.clock.sleep(seconds)
        self.replan_here(site_id, reason)

    @property
    def settle_grace(self) -> float:
        """Simulated s an EV has to follow a new limit before what it shows is judged."""
        return self.settings.smart_charging_settle + SAMPLE_GRACE_S

    def track(self, key: str, t: Tracked) -> None:
        old = self.sessions.get(key)
        if old is not None:
            self.untrack(key)
        self.sessions[key] = t
        self.by_transaction[(t.charge_point_id, t.transaction_id)] = t

    def untrack(self, key: str) -> None:
        t = self.sessions.pop(key)
        index = (t.charge_point_id, t.transaction_id)
        if self.by_transaction.get(index) is t:
            del self.by_transaction[index]

    def drop_transaction(self, charge_point_id: str, transaction_id: str) -> None:
        t = self.by_transaction.get((charge_point_id, transaction_id))
        if t is not None:
            key = session_key(t.charge_point_id, t.evse_id)
            if self.sessions.get(key) is t:
                self.untrack(key)
            else:
                del self.by_transaction[(charge_point_id, transaction_id)]

    def _measure(self, event: SessionUpdated | MeterSampled) -> Verdict | None:
        """What a meter value says of its session (:func:`smart_charging.observing.measure`)."""
        return observing.measure(self, event)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; cancelled when the service stops."""
        task = asyncio.create_task(work)
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)
