"""The fault-detection service: committed events in, alerts in Postgres and events out.

It subscribes to the bus of committed events, runs every rule
(:class:`~csms.monitoring.rules_engine.FaultDetector`) as each event arrives,
and turns observations into alerts (:class:`~csms.monitoring.alerts.Lifecycle`):
a finding opens an alert or is folded into the unresolved one, and an alert
whose condition has stayed clear for ``alerts_clear_hold`` seconds is
resolved. Opening and resolving append :class:`AlertOpened` /
:class:`AlertResolved` to the event log in the same transaction as the alert
row (so the outbox relays them to ``charger-alerts``), and publish them on the
bus after commit. What one turn observed (every event the feed had handed
over, or one tick) is stored in one transaction
(:class:`~csms.monitoring.alerts_writer.AlertWriter`): the feed flushes it
before it moves its cursor. The ``csms_alerts_open`` gauge is counted by the
lifecycle, not queried. A periodic tick runs the rules that need time alone
(heartbeat gaps, windows expiring) and resolves what is due.

The engine runs once per cluster, on the node holding the ``alerts`` lease
(:class:`~csms.cluster.singleton.LeaderFeed`): the bus carries every node's
events, so it sees every charger wherever its socket is. A node that takes the
lease over loads the unresolved alerts from Postgres, rebuilds the rules'
windows from the last hour of events before the stored cursor (without acting
on them) and resumes at that cursor, so an alert opened under one node
resolves under another. Every node serves the alerts API; an operator's
resolution on any node reaches the engine as an ``alert_resolved`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter

from csms.cluster.leases import Lease
from csms.cluster.singleton import LeaderFeed
from csms.events import ChargerBooted, Event, SessionEnded
from csms.monitoring import alerts_store, metrics, rule_inputs, rules
from csms.monitoring.alerts import AlertKey, AlertResolved, Lifecycle
from csms.monitoring.alerts_store import AlertRow
from csms.monitoring.alerts_writer import AlertWriter, Pending
from csms.monitoring.rules import Clear, Observation, Thresholds
from csms.monitoring.rules_engine import (
    ChargerProfile,
    ChargingLimits,
    FaultDetector,
    LimitOf,
    thresholds_for,
)

if TYPE_CHECKING:
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

THRESHOLDS_RELOAD_S = 60.0
LIMIT_EVENT = "charging_limit_set"  # smart charging's (a plugin's) accepted or refused profile
TICK_SLICE = 1000  # chargers whose time-driven rules run between two turns of the loop
# On takeover, the rules' windows are rebuilt from this much history (the longest
# default window: short sessions within an hour).
WARM_UP_S = 3600.0
# Findings stored in one transaction at most (a burst of more is several): bounds the
# synchronous work after commit (rows decoded, events published) to a few ms of the loop.
BATCH_MAX = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


class AlertService:
    """Fault detection and the alert lifecycle of one CSMS process."""

    name = "alerts"

    def __init__(self, context: ServiceContext, limit_of: LimitOf | None = None) -> None:
        self.context = context
        settings = context.settings
        self.defaults = Thresholds(
            clock_skew_max_s=settings.alerts_clock_skew_max,
            heartbeat_gap_multiple=settings.alerts_heartbeat_gap_multiple,
        )
        # Smart-charging limits: those before the feed's start read from the event log
        # when taking the engine over, then followed in the feed (unless given).
        self.limits = ChargingLimits()
        self._limit_of = limit_of or self.limits.limit_of
        self.detector = FaultDetector(self._limit_of)
        self.lifecycle = Lifecycle()
        self.writer = AlertWriter(context.pool, context.bus, settings.alerts_evidence_cap)
        self._pending: list[Pending] = []  # observed, not stored yet (see flush)
        self._published: dict[tuple[str, str], int] | None = None  # the gauge as last set
        self._overrides: dict[tuple[str, str], dict[str, Any]] = {}
        self._profiles: dict[str, ChargerProfile] = {}
        self._reloaded_at = 0.0  # loop time of the last threshold reload
        self._thresholds: dict[str, Thresholds] = {}
        self._lock = asyncio.Lock()  # one writer of the lifecycle at a time
        self.leader = LeaderFeed(
            "alerts",
            bus=context.bus,
            leases=context.leases,
            pool=context.pool,
            handle=self._on_event,
            on_lead=self._on_lead,
            on_lose=self._on_lose,
            warm_up=self._warm_up,
            warm_up_s=WARM_UP_S,
            also_run=[self._ticks],
            flush=self.flush,
        )
        self.evaluated = 0  # events the rules have seen (for tests and progress)

    def api_routers(self) -> Sequence[APIRouter]:
        from csms.monitoring.alerts_api import build_router

        return [build_router(self)]

    async def start(self) -> None:
        if not self.context.settings.alerts_enabled:
            log.info("alerts.disabled", setting="CSMS_ALERTS_ENABLED")
            return  # the API still reads and resolves stored alerts
        await self.leader.start()

    async def stop(self) -> None:
        await self.leader.stop()

    async def _on_lead(self, lease: Lease) -> None:
        """Took the engine over: state from Postgres (the warm-up replays the windows)."""
        async with self._lock:
            self.lifecycle = Lifecycle()
            self._pending = []  # not stored under the last lease: the feed resumes before them
            self.detector = FaultDetector(self._limit_of)
            self.limits.clear()
            await self.load_limits()
            for row in await alerts_store.unresolved(self.context.pool):
                self.lifecycle.opened(row.key, row.id, row.severity.value)
            self._published = None
            self._publish_counts()
        await self.reload_thresholds()

    def _on_lose(self) -> None:
        metrics.set_open_alerts({})  # exported by the lease holder only
        self._published = None

    # -- thresholds ----------------------------------------------------------------------

    async def reload_thresholds(self) -> None:
        """Re-read overrides and charger profiles (at start, after an API change, each minute)."""
        self._overrides = await alerts_store.threshold_overrides(self.context.pool)
        self._profiles = await rule_inputs.charger_profiles(self.context.pool)
        self._thresholds.clear()
        self._reloaded_at = asyncio.get_running_loop().time()

    def thresholds_of(self, charge_point_id: str) -> Thresholds:
        """The charger's thresholds (see :func:`thresholds_for`), cached until a reload."""
        cached = self._thresholds.get(charge_point_id)
        if cached is not None:
            return cached
        profile = self._profiles.get(charge_point_id, ChargerProfile())
        th, refused = thresholds_for(charge_point_id, profile, self.defaults, self._overrides)
        for reason in refused:
            log.warning(
                "alerts.bad_threshold_override", charge_point_id=charge_point_id, reason=reason
            )
        self._thresholds[charge_point_id] = th
        return th

    # -- events in -----------------------------------------------------------------------

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, AlertResolved):  # e.g. by an operator through another node
            async with self._lock:
                await self._flush_locked()  # what came before it in the feed first
                key = self.lifecycle.key_of(event.alert_id)
                if key is not None:
                    self.lifecycle.resolved(key)
                    self._publish_counts()
            return
        if event.type.startswith("alert_"):
            return
        try:
            self.observe(event, utcnow())
            if len(self._pending) >= BATCH_MAX:
                await self.flush()
        except Exception:
            log.exception("alerts.rule_evaluation_failed", event_type=event.type)

    async def _warm_up(self, event: Event, recorded_at: datetime) -> None:
        """An event the previous engine already handled: rebuild windows and clear times only."""
        if event.type.startswith("alert_"):
            return
        if self._limits_learned(event):
            return
        th = self.thresholds_of(event.charge_point_id)
        for obs in self.detector.observe(event, recorded_at, th):
            key: AlertKey = (event.charge_point_id, obs.evse_id, obs.connector_id, obs.rule)
            if isinstance(obs, Clear):
                self.lifecycle.cleared(key, recorded_at)
            else:
                self.lifecycle.found_again(key)

    def observe(self, event: Event, received_at: datetime) -> None:
        """Run the rules over one committed event; what they observed waits for :meth:`flush`."""
        if isinstance(event, ChargerBooted):
            profile = self._profiles.get(event.charge_point_id, ChargerProfile())
            if profile.model != event.model:
                self._profiles[event.charge_point_id] = replace(profile, model=event.model)
                self._thresholds.pop(event.charge_point_id, None)
        if self._limits_learned(event):
            return
        th = self.thresholds_of(event.charge_point_id)
        observations = self.detector.observe(event, received_at, th)
        self.evaluated += 1
        self._queue(event.charge_point_id, observations, received_at)

    def _limits_learned(self, event: Event) -> bool:
        """Follow the smart-charging limits in the feed's (commit) order; True: a limit event.

        In the same order as the meter values, so a reading is checked against the
        limit in force when it was stored. (Read on the periodic tick instead, a
        raised limit was learned up to a tick late, and readings drawing what the
        new limit allowed were checked against the old one: false alerts.)
        """
        if event.type == LIMIT_EVENT:
            self.limits.limit_set(event.charge_point_id, event.payload())
            return True
        if isinstance(event, SessionEnded):
            self.limits.transaction_ended(event.charge_point_id, event.transaction_id)
        return False

    async def load_limits(self) -> None:
        """The limits set before the feed's start (e.g. a TxDefaultProfile sent at boot)."""
        position: tuple[int, int] = (0, 0)
        while True:
            found = await rule_inputs.charging_limits_after(self.context.pool, position)
            for charge_point_id, payload, _ in found:
                self.limits.limit_set(charge_point_id, payload)
            if len(found) < rule_inputs.LIMITS_PAGE:
                return
            position = found[-1][2]

    def _queue(
        self, charge_point_id: str, observations: Sequence[Observation], now: datetime
    ) -> None:
        if not self._pending and not self._lock.locked():
            if not self.lifecycle.has_unresolved(charge_point_id):
                # The clears before the first finding would start no hold (nothing of this
                # charger is unresolved, nothing is queued): skip them without a key each.
                # A healthy meter value makes about six (~15 % of the engine's time).
                for first, obs in enumerate(observations):
                    if obs.__class__ is not Clear:
                        observations = observations[first:]
                        break
                else:
                    return
        for obs in observations:
            key: AlertKey = (charge_point_id, obs.evse_id, obs.connector_id, obs.rule)
            if isinstance(obs, Clear) and not self._pending and not self._lock.locked():
                # Nothing stored or being stored to wait behind (most meter values).
                self.lifecycle.cleared(key, now)
            else:
                self._pending.append((key, obs, now))

    async def apply_many(
        self, by_charger: Mapping[str, Sequence[Observation]], now: datetime
    ) -> None:
        """Open, refresh or start clearing the chargers' alerts in one transaction (up to
        BATCH_MAX); nothing is resolved here (see :meth:`tick`)."""
        async with self._lock:
            for charge_point_id, observations in by_charger.items():
                self._queue(charge_point_id, observations, now)
            await self._flush_locked()

    async def flush(self) -> None:
        """Store what was observed and not stored yet: one transaction (or a few)."""
        if self._pending:
            async with self._lock:
                await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
            try:
                await self.writer.store(self.lifecycle, batch)
            finally:
                self._pending[:0] = batch  # what was not stored (nothing, unless it raised)
                self._publish_counts()

    # -- time ----------------------------------------------------------------------------

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.context.settings.alerts_tick_interval)
            try:
                await self.tick(utcnow())
            except Exception:
                log.exception("alerts.tick_failed")

    async def tick(self, now: datetime) -> None:
        """Time-driven rules (heartbeat gaps, expiring windows), then resolve what is due."""
        if asyncio.get_running_loop().time() - self._reloaded_at >= THRESHOLDS_RELOAD_S:
            await self.reload_thresholds()  # site assignments change through smart charging
        by_charger: dict[str, list[Observation]] = {}
        chargers = list(self.detector.chargers)
        for start in range(0, len(chargers), TICK_SLICE):
            if start:  # the loop is the chargers' too: 10,000 in one go took ~20 ms
                await asyncio.sleep(0)
            chunk = chargers[start : start + TICK_SLICE]
            for charge_point_id, obs in self.detector.tick(now, self.thresholds_of, chunk):
                by_charger.setdefault(charge_point_id, []).append(obs)
        interval = float(self.context.settings.heartbeat_interval)
        # Only chargers silent for a whole interval come back; the rule decides per
        # charger (its multiple may be overridden); open gaps not among them are clear.
        silent = await rule_inputs.silent_connected(self.context.pool, now, interval)
        for charge_point_id, seen in silent.items():
            found = rules.heartbeat_gap(seen, now, interval, self.thresholds_of(charge_point_id))
            by_charger.setdefault(charge_point_id, []).append(found)
        for cp_id, evse_id, connector_id, rule in list(self.lifecycle.unresolved):
            if rule == rules.HEARTBEAT_GAP and cp_id not in silent:
                by_charger.setdefault(cp_id, []).append(Clear(rule, evse_id, connector_id))
        await self.apply_many(by_charger, now)  # the whole tick's findings in one transaction
        await self.resolve_due(now)

    async def resolve_due(self, now: datetime) -> None:
        hold = self.context.settings.alerts_clear_hold
        async with self._lock:
            await self._flush_locked()  # a finding not stored yet restarts the hold
            due: list[tuple[AlertKey | None, int]] = list(self.lifecycle.due(now, hold))
            for start in range(0, len(due), BATCH_MAX):
                await self.writer.resolve(
                    self.lifecycle, due[start : start + BATCH_MAX], now, "auto"
                )
            self._publish_counts()

    async def resolve_by_operator(self, alert_id: int, by: str) -> AlertRow | None:
        """Resolve an alert from the API; None if it is unknown or already resolved."""
        async with self._lock:
            await self._flush_locked()
            key = self.lifecycle.key_of(alert_id)
            rows = await self.writer.resolve(self.lifecycle, [(key, alert_id)], utcnow(), by)
            self._publish_counts()
            return rows[0] if rows else None

    def _publish_counts(self) -> None:
        """Set the gauge from the lifecycle's counts, if they changed (no query)."""
        if not self.leader.leading:
            return  # exported by the lease holder only (an operator's resolve on another node)
        counts = self.lifecycle.counts()
        if counts != self._published:
            metrics.set_open_alerts(counts)
            self._published = counts
