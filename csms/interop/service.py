"""Learning what each charger supports: asked after boot, read from its reports.

* After a charger's BootNotification is answered Accepted (a random 0 to
  post_boot_spread_seconds later) -- or, when nothing is
  known of it yet, once it reconnected and did not boot (a CSMS restart) -- the
  node holding its socket asks it: 1.6 GetConfiguration(ChargingScheduleAllowedChargingRateUnit),
  2.0.1 GetVariables(SmartChargingCtrlr.RateUnit, TariffCostCtrlr.Available[Cost],
  TariffCostCtrlr.Enabled[Cost]). What it answers is stored per charger
  (:mod:`csms.storage.interop`); a charger that cannot answer stays "unknown".
* A 2.0.1 NotifyReport (e.g. the answer to a GetBaseReport) that names those
  variables updates the same facts.
* A boot with other firmware than the one that taught the CSMS an action was
  unsupported gives the charger a fresh chance at it.

Only the events of chargers held (or stored) by this node are read here: with
several workers, each probes and bookkeeps its own chargers, once.

The third source, a CALLERROR NotImplemented/NotSupported to any CSMS call, is
recorded where calls are sent (:meth:`csms.connection.OcppConnection.call`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.background import BackgroundTasks
from csms.bus import Subscription
from csms.cluster.feed import FeedRow
from csms.events import (
    ChargerBooted,
    ChargerConnected,
    Event,
    Protocol,
    RegistrationStatus,
    ReportReceived,
)
from csms.interop import capabilities
from csms.interop.capabilities import COST_UPDATED, Learned
from csms.storage import interop as store

if TYPE_CHECKING:
    from csms.connection import OcppConnection
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

_TYPES = frozenset({ChargerBooted.type, ChargerConnected.type, ReportReceived.type})


class InteropService:
    name = "interop"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self._tasks = BackgroundTasks()  # the consumer and the probes it starts
        self._subscription: Subscription | None = None
        # How long a connected charger is given to send its BootNotification.
        self.boot_wait = min(context.settings.response_timeout, 10.0)

    def api_routers(self) -> Sequence[APIRouter]:
        from csms.interop.api import build_router  # the API package imports the services

        return [build_router()]

    def wants(self, row: FeedRow) -> bool:
        """Boots, reconnects and reports of the chargers held (or just stored) here.

        The node holding the socket probes, and the node that stored a boot forgets
        the other firmware's facts: once in the cluster, not once per worker.
        """
        if row.type not in _TYPES:
            return False
        return row.local or self.context.registry.get(row.charge_point_id) is not None

    async def start(self) -> None:
        subscription = self.context.bus.subscribe(self.name, self.wants)
        self._subscription = subscription
        self._tasks.spawn(self._consume(subscription))

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._subscription is not None:
            self.context.bus.unsubscribe(self._subscription)
            self._subscription = None

    async def _consume(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            try:
                await self.on_event(event)
            except Exception:
                log.exception("interop.event_failed", type=event.type)

    async def on_event(self, event: Event) -> None:
        cp = event.charge_point_id
        if isinstance(event, ChargerBooted):
            forgotten = await store.forget_other_firmware(
                self.context.pool, cp, event.firmware_version
            )
            if forgotten:
                log.info("interop.new_firmware", charge_point_id=cp, forgotten=forgotten)
            self._tasks.spawn(self.probe(cp))
        elif isinstance(event, ChargerConnected):
            self._tasks.spawn(self.probe_reconnected(cp))
        elif isinstance(event, ReportReceived):
            await self.apply(cp, capabilities.from_v201_report(event.report_data))

    async def probe(self, charge_point_id: str) -> Learned | None:
        """Ask a just-booted charger what it supports, once its boot has been answered."""
        connection = self.context.registry.get(charge_point_id)
        if connection is None:  # the node holding the socket asks
            return None
        try:
            await asyncio.wait_for(connection.boot_answered.wait(), self.boot_wait)
        except TimeoutError:
            return None
        # Spread: after a reconnect storm the probes would otherwise compete with the
        # boots still queued (docs/capacity.md); the charger works meanwhile.
        await asyncio.sleep(random.uniform(0, self.context.settings.post_boot_spread_seconds))
        if self.context.registry.get(charge_point_id) is not connection:
            return None  # gone (or reconnected: that connection's boot asks)
        return await self._probe_now(charge_point_id, connection)

    async def probe_reconnected(self, charge_point_id: str) -> Learned | None:
        """Ask a charger that reconnected without booting, if nothing is known of it yet.

        A CSMS restart (an upgrade) has every charger reconnect without a reboot: one
        accepted before is asked once its first message shows it will not boot.
        """
        connection = self.context.registry.get(charge_point_id)
        if connection is None:
            return None
        try:
            await asyncio.wait_for(connection.boot_answered.wait(), self.boot_wait)
            return None  # it booted: asked by :meth:`probe`
        except TimeoutError:
            pass
        if not await store.booted_but_unknown(self.context.pool, charge_point_id):
            return None  # known from an earlier boot, or a charger that never booted
        return await self._probe_now(charge_point_id, connection)

    async def _probe_now(self, charge_point_id: str, connection: OcppConnection) -> Learned | None:
        if connection.registration is not RegistrationStatus.ACCEPTED:
            return None  # asked again at the boot that is accepted
        try:
            learned = await self._ask(charge_point_id, connection.protocol)
        except Exception as error:  # offline, CALLERROR (recorded), timeout: stays unknown
            log.info("interop.probe_failed", charge_point_id=charge_point_id, error=repr(error))
            return None
        await self.apply(charge_point_id, learned)
        return learned

    async def _ask(self, charge_point_id: str, protocol: Protocol) -> Learned:
        router = self.context.router
        if protocol is Protocol.V16:
            key = [capabilities.V16_RATE_UNIT_KEY]
            answer: Any = await router.call(charge_point_id, call16.GetConfiguration(key=key))
            return capabilities.from_v16_configuration(answer.configuration_key)
        request = call201.GetVariables(get_variable_data=capabilities.v201_probe())
        answer = await router.call(charge_point_id, request)
        return capabilities.from_v201_variables(answer.get_variable_result)

    async def apply(self, charge_point_id: str, learned: Learned) -> None:
        """Store what ``learned`` says (and nothing about what it does not know).

        Each fact is one statement, atomic on its own and independent of the other,
        so no transaction: BEGIN and COMMIT were half the round trips of a probe's
        write, after every boot.
        """
        async with self.context.pool.acquire() as conn:
            if learned.rate_units:
                await store.set_rate_units(
                    conn, charge_point_id, learned.rate_units, learned.rate_units_source
                )
            if learned.cost_updated is False:
                detail = learned.cost_detail
                new = await store.record_unsupported(
                    conn, charge_point_id, COST_UPDATED, store.DEVICE_MODEL, detail
                )
                if new:
                    log.info("interop.action_unsupported", charge_point_id=charge_point_id,
                             action=COST_UPDATED, detail=detail)  # fmt: skip
            elif learned.cost_updated is True:
                await store.forget_unsupported(
                    conn, charge_point_id, COST_UPDATED, [store.DEVICE_MODEL]
                )
        if learned.rate_units:
            log.info("interop.rate_units", charge_point_id=charge_point_id,
                     units=sorted(learned.rate_units))  # fmt: skip
