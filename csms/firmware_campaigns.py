"""Firmware campaigns: send one firmware to many chargers and follow each one's progress.

A campaign's targets are sent UpdateFirmware (1.6 SignedUpdateFirmware when the
campaign is signed) by the node each charger is connected to: every
``firmware_campaign_interval`` seconds, and at once when a charger connects,
this node claims the unsent targets of its connected chargers in Postgres (so
two nodes never send the same one) and sends them through the CommandRouter,
a few at a time. Chargers that are offline get theirs when they come back.
Their FirmwareStatusNotifications move each target's status
(:func:`csms.storage.firmware_campaigns.record_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter

from csms.background import BackgroundTasks
from csms.bus import Subscription
from csms.cluster.feed import held_here
from csms.connection import CallErrorReceived
from csms.events import ChargerConnected
from csms.router import ChargerNotConnected
from csms.storage import firmware_campaigns
from handlers.commands import models as m
from handlers.commands import v16 as commands16
from handlers.commands import v201 as commands201
from handlers.commands.v16 import NotInThisVersion

if TYPE_CHECKING:
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)
_PARALLEL = 10  # UpdateFirmware requests in flight per node


class FirmwareCampaignService:
    name = "firmware-campaigns"

    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._subscription: Subscription | None = None
        self._tasks = BackgroundTasks()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(_PARALLEL)

    def api_routers(self) -> Sequence[APIRouter]:
        from csms.api.firmware_campaigns import build_router

        return [build_router(self)]

    async def start(self) -> None:
        # A charger connecting here: the targets this node sends to are its own chargers'.
        wants = held_here(self._context.registry, ChargerConnected.type)
        self._subscription = self._context.bus.subscribe(self.name, wants)
        self._tasks.spawn(self._watch_connections(self._subscription))
        self._tasks.spawn(self._dispatch_forever())

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._subscription is not None:
            self._context.bus.unsubscribe(self._subscription)

    def wake(self) -> None:
        """Dispatch now (a campaign was created, or a charger connected)."""
        self._wake.set()

    async def _watch_connections(self, subscription: Subscription) -> None:
        while True:
            if isinstance(await subscription.get(), ChargerConnected):
                self.wake()

    async def _dispatch_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self._context.settings.firmware_campaign_interval
                )
            self._wake.clear()
            try:
                await self.dispatch()
            except Exception:
                log.exception("firmware_campaign.dispatch_failed")

    async def dispatch(self) -> int:
        """Send every unsent target whose charger is connected here; return how many."""
        connected = [c.id for c in self._context.registry.all()]
        if not connected:
            return 0
        claimed = await firmware_campaigns.claim(self._context.pool, connected)
        await asyncio.gather(*(self._send(target) for target in claimed))
        return len(claimed)

    async def _send(self, target: dict[str, Any]) -> None:
        campaign_id, charge_point_id = target["campaign_id"], target["charge_point_id"]
        command = m.UpdateFirmware(
            location=target["location"],
            retrieve_at=target["retrieve_at"],
            install_at=target["install_at"],
            signature=target["signature"],
            signing_certificate=target["signing_certificate"],
            retries=target["retries"],
            retry_interval=target["retry_interval"],
        )
        pool, router = self._context.pool, self._context.router
        async with self._limit:
            try:
                is_v16 = router.protocol_of(charge_point_id).value == "ocpp1.6"
                translate = commands16.update_firmware if is_v16 else commands201.update_firmware
                payload = translate(command, target["request_id"])
                response = await router.call(charge_point_id, payload)
                # 1.6 UpdateFirmware.conf is empty: the charger took it.
                answer = str(getattr(response, "status", None) or "Accepted")
            except ChargerNotConnected:
                await firmware_campaigns.release(pool, campaign_id, charge_point_id)
                return
            except NotInThisVersion as error:
                answer = f"NotInThisVersion: {error}"
            except CallErrorReceived as error:
                answer = f"CallError: {error.code}"
            except (TimeoutError, ConnectionError) as error:
                answer = f"NoAnswer: {type(error).__name__}"
        await firmware_campaigns.answered(pool, campaign_id, charge_point_id, answer)
        log.info(
            "firmware_campaign.sent",
            campaign_id=campaign_id,
            charge_point_id=charge_point_id,
            answer=answer,
        )
