"""OCPP 2.0.1 certificate messages a charging station sends (A02/A03, M02/M06)."""

from __future__ import annotations

from typing import Any

import structlog
from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.certificates.contract_provider import request_contract_certificate
from csms.certificates.ocsp import certificate_status
from csms.events import ChargerReportReceived
from handlers._time import now
from handlers.security import SecurityHandlers

log = structlog.get_logger(__name__)


class V201Security(SecurityHandlers):
    """Mixed into :class:`handlers.v201.ChargePoint201`."""

    @on(Action.sign_certificate)
    async def on_sign_certificate(
        self, csr: str, certificate_type: str | None = None, **_: Any
    ) -> call_result.SignCertificate:
        accepted = await self._sign_certificate(
            csr, certificate_type or "ChargingStationCertificate"
        )
        return call_result.SignCertificate(status="Accepted" if accepted else "Rejected")

    @on(Action.get_certificate_status)
    async def on_get_certificate_status(
        self, ocsp_request_data: dict[str, Any], **_: Any
    ) -> call_result.GetCertificateStatus:
        outcome = await certificate_status(
            ocsp_request_data, self.settings.certificates_ocsp_timeout
        )
        await self._record(
            "GetCertificateStatus",
            {"ocsp_request_data": ocsp_request_data, "status": outcome.status,
             "reason": outcome.reason},
        )  # fmt: skip
        status_info = None
        if outcome.reason is not None:
            status_info = {"reason_code": "OCSPFailed", "additional_info": outcome.reason[:512]}
        return call_result.GetCertificateStatus(
            status=outcome.status, ocsp_result=outcome.ocsp_result, status_info=status_info
        )

    @on(Action.get_15118_ev_certificate)
    async def on_get_15118_ev_certificate(
        self, iso15118_schema_version: str, action: str, exi_request: str, **_: Any
    ) -> call_result.Get15118EVCertificate:
        outcome = await request_contract_certificate(
            self.settings.certificates_contract_provider,
            self.id,
            iso15118_schema_version,
            action,
            exi_request,
            self.settings.certificates_ocsp_timeout,
        )
        await self._record(
            "Get15118EVCertificate",
            {
                "iso15118_schema_version": iso15118_schema_version,
                "action": action,
                "exi_request": exi_request,
                "status": outcome.status,
                "reason": outcome.reason,
            },
        )
        status_info = None
        if outcome.reason is not None:
            status_info = {"reason_code": "ProviderFailed", "additional_info": outcome.reason[:512]}
        return call_result.Get15118EVCertificate(
            status=outcome.status, exi_response=outcome.exi_response, status_info=status_info
        )

    async def _record(self, action: str, data: dict[str, Any]) -> None:
        await self.central.record(
            ChargerReportReceived(charge_point_id=self.id, occurred_at=now(), action=action,
                                  data=data)
        )  # fmt: skip
