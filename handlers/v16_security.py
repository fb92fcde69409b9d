"""OCPP 1.6J security whitepaper (edition 3) messages a charger sends."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from csms.events import FirmwareStatusChanged, UploadStatusChanged
from handlers._time import now
from handlers.security import SecurityHandlers

# 1.6 SignCertificate has no type: it is always the charge point's own certificate.
_CHARGE_POINT_CERTIFICATE = "ChargingStationCertificate"


class V16Security(SecurityHandlers):
    """Mixed into :class:`handlers.v16.ChargePoint16`."""

    @on(Action.security_event_notification)
    async def on_security_event_notification(
        self, type: str, timestamp: str, tech_info: str | None = None
    ) -> call_result.SecurityEventNotification:
        await self._security_event(type, timestamp, tech_info)
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str) -> call_result.SignCertificate:
        accepted = await self._sign_certificate(csr, _CHARGE_POINT_CERTIFICATE)
        return call_result.SignCertificate(status="Accepted" if accepted else "Rejected")

    @on(Action.log_status_notification)
    async def on_log_status_notification(
        self, status: str, request_id: int | None = None
    ) -> call_result.LogStatusNotification:
        await self.central.record(
            UploadStatusChanged(
                charge_point_id=self.id,
                occurred_at=now(),
                kind="log",
                status=status,
                request_id=request_id,
            )
        )
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status_notification(
        self, status: str, request_id: int | None = None
    ) -> call_result.SignedFirmwareStatusNotification:
        await self.central.record(
            FirmwareStatusChanged(
                charge_point_id=self.id, occurred_at=now(), status=status, request_id=request_id
            )
        )
        return call_result.SignedFirmwareStatusNotification()
