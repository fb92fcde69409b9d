"""Deliver what the CA signed, and renew charger certificates before they expire.

SignCertificate is answered by the handlers (:mod:`handlers.security`), which
store the issued certificate; once that is committed this service sends
CertificateSigned through the :class:`~csms.router.CommandRouter` and records
the charger's answer (Accepted / Rejected, or NotDelivered). Every
``certificates_renewal_interval`` it asks chargers connected here whose
installed certificate expires within ``certificates_renew_before_days`` for a
new CSR: TriggerMessage SignChargingStationCertificate (2.0.1),
ExtendedTriggerMessage SignChargePointCertificate (1.6 security extension); and
it delivers again what was issued but never delivered (a lost event, a socket
that closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.background import BackgroundTasks
from csms.bus import Subscription
from csms.certificates import authority
from csms.cluster.feed import held_here
from csms.connection import CallErrorReceived
from csms.events import CertificateSigningRequested, Protocol
from csms.router import ChargerNotConnected
from csms.storage import certificates

if TYPE_CHECKING:
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)


class CertificateService:
    name = "certificates"

    def __init__(self, context: ServiceContext) -> None:
        self._context = context
        self._subscription: Subscription | None = None
        self._tasks = BackgroundTasks()

    def api_routers(self) -> Sequence[APIRouter]:
        return ()  # the certificate routes are in csms.api.ocpp_data

    async def start(self) -> None:
        wants = held_here(self._context.registry, CertificateSigningRequested.type)
        self._subscription = self._context.bus.subscribe(self.name, wants)
        self._tasks.spawn(self._deliver_signed(self._subscription))
        self._tasks.spawn(self._renew_periodically())

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._subscription is not None:
            self._context.bus.unsubscribe(self._subscription)

    async def _deliver_signed(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            if (
                isinstance(event, CertificateSigningRequested)
                and event.serial_number
                # Every node sees every node's events: the one holding the socket delivers.
                and self._context.registry.get(event.charge_point_id) is not None
            ):
                # Its own task: a slow charger must not hold up the next delivery.
                self._tasks.spawn(self.deliver(event.charge_point_id, event.serial_number))

    async def deliver(self, charge_point_id: str, serial_number: str) -> str:
        """Send CertificateSigned for an issued certificate; record and return the outcome."""
        pool = self._context.pool
        async with pool.acquire() as conn:
            issued = await certificates.find(conn, charge_point_id, serial_number)
            if issued is None:
                return "NotDelivered"
            ca = await authority.load_for(conn, self._context.settings, issued["certificate_type"])
        chain = issued["certificate_pem"] + ca.certificate_pem
        router = self._context.router
        try:
            payload: Any
            if router.protocol_of(charge_point_id) is Protocol.V16:
                payload = call16.CertificateSigned(certificate_chain=chain)
            else:
                payload = call201.CertificateSigned(
                    certificate_chain=chain, certificate_type=issued["certificate_type"]
                )
            response = await router.call(charge_point_id, payload)
            outcome = str(response.status)
        except (ChargerNotConnected, CallErrorReceived, TimeoutError, ConnectionError) as error:
            log.warning("certificate.not_delivered", charge_point_id=charge_point_id,
                        error=repr(error))  # fmt: skip
            outcome = "NotDelivered"
        await certificates.set_delivery(pool, charge_point_id, serial_number, outcome)
        log.info("certificate.delivered", charge_point_id=charge_point_id, outcome=outcome)
        return outcome

    async def _renew_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._context.settings.certificates_renewal_interval)
            try:
                await self.redeliver()
                await self.renew_expiring()
            except Exception:
                log.exception("certificate.renewal_failed")

    async def redeliver(self) -> int:
        """Deliver again what was issued but not delivered (a lost event, a closed socket)."""
        connected = [c.id for c in self._context.registry.all()]
        if not connected:
            return 0
        # Older than one interval: a delivery under way now is left alone.
        interval = self._context.settings.certificates_renewal_interval
        before = datetime.now(UTC) - timedelta(seconds=interval)
        pending = await certificates.undelivered(self._context.pool, connected, before)
        for charge_point_id, serial_number in pending:
            await self.deliver(charge_point_id, serial_number)
        return len(pending)

    async def renew_expiring(self) -> list[str]:
        """Ask each charger here with an expiring certificate for a new CSR; return them."""
        settings = self._context.settings
        connected = [c.id for c in self._context.registry.all()]
        if not connected:
            return []
        horizon = datetime.now(UTC) + timedelta(days=settings.certificates_renew_before_days)
        due = await certificates.due_for_renewal(self._context.pool, connected, horizon)
        asked = []
        for charge_point_id in due:
            try:
                payload: Any
                if self._context.router.protocol_of(charge_point_id) is Protocol.V16:
                    payload = call16.ExtendedTriggerMessage(
                        requested_message="SignChargePointCertificate"
                    )
                else:
                    payload = call201.TriggerMessage(
                        requested_message="SignChargingStationCertificate"
                    )
                response = await self._context.router.call(charge_point_id, payload)
            except (ChargerNotConnected, CallErrorReceived, TimeoutError, ConnectionError):
                continue
            log.info("certificate.renewal_requested", charge_point_id=charge_point_id,
                     status=response.status)  # fmt: skip
            asked.append(charge_point_id)
        return asked
