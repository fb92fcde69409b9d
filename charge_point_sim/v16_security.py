"""OCPP 1.6J security whitepaper (edition 3): what a 1.6 charger with the extension does.

ExtendedTriggerMessage, SignedUpdateFirmware, GetLog and the certificate
messages, answered by the version-neutral logic of :class:`SimCharger` and
:class:`~charge_point_sim.certificates.CertificateStore`.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call, call_result

from charge_point_sim.charger import handles
from charge_point_sim.clock import iso, parse_iso
from charge_point_sim.security import SecurityCommon
from charge_point_sim.uploads import start_log_upload


class V16Security(SecurityCommon):
    """Mixed into :class:`~charge_point_sim.v16.V16Charger` before the basic handlers."""

    @handles("ExtendedTriggerMessage")
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        status = self.trigger_message(
            requested_message,
            connector_id,
            {
                "FirmwareStatusNotification": lambda: call.FirmwareStatusNotification(
                    status=self.firmware_status
                ),
                "LogStatusNotification": lambda: call.LogStatusNotification(
                    status=self.upload_status,
                    request_id=None,  # no upload under way: no id
                ),
                "SignChargePointCertificate": lambda: call.SignCertificate(
                    csr=self.certificates.csr_pem()
                ),
            },
        )
        return call_result.ExtendedTriggerMessage(status=status)

    security_profile: int = 1

    async def _reconnect(self) -> None:
        self.drop_connection()

    @handles("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **kwargs: Any) -> Any:
        """AuthorizationKey (security profiles 1/2): take it, reconnect with it."""
        if key == "SecurityProfile":  # the charger reconnects with the new profile
            if value not in ("0", "1", "2", "3"):
                return call_result.ChangeConfiguration(status="Rejected")
            self.security_profile = int(value)
            self.defer(self._reconnect)
            return call_result.ChangeConfiguration(status="Accepted")
        if key != "AuthorizationKey":
            return super().on_change_configuration(key, value, **kwargs)  # type: ignore[misc]
        if not 16 <= len(value) <= 40:
            return call_result.ChangeConfiguration(status="Rejected")
        self.take_password(value)
        return call_result.ChangeConfiguration(status="Accepted")

    @handles("SignedUpdateFirmware")
    def on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        if not firmware.get("signature") or not firmware.get("signing_certificate"):
            return call_result.SignedUpdateFirmware(status="InvalidCertificate")
        self.start_firmware_update(
            parse_iso(firmware["retrieve_date_time"]),
            lambda status: call.SignedFirmwareStatusNotification(
                status=status, request_id=request_id
            ),
        )
        return call_result.SignedUpdateFirmware(status="Accepted")

    @handles("GetLog")
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        name = f"{log_type.lower()}-{self.cfg.charger_id}-{request_id}.log"
        start_log_upload(
            self,
            log["remote_location"],
            name,
            log_type,
            lambda status: call.LogStatusNotification(status=status, request_id=request_id),
            "UploadFailure",
        )
        return call_result.GetLog(status="Accepted", filename=name)

    @handles("GetDiagnostics")
    def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        name = f"diagnostics-{self.cfg.charger_id}-{self.clock.now():%Y%m%d%H%M%S}.log"
        start_log_upload(
            self,
            location,
            name,
            "DiagnosticsLog",
            lambda status: call.DiagnosticsStatusNotification(status=status),
            "UploadFailed",
        )
        return call_result.GetDiagnostics(file_name=name)

    async def request_certificate(self) -> Any:
        return await self.send(call.SignCertificate(csr=self.certificates.csr_pem()))

    @handles("CertificateSigned")
    def on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        return call_result.CertificateSigned(
            status=self.certificates.accept_signed(certificate_chain)
        )

    @handles("InstallCertificate")
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        status = self.certificates.install(certificate_type, certificate)
        return call_result.InstallCertificate(status=status)

    @handles("DeleteCertificate")
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        return call_result.DeleteCertificate(status=self.certificates.delete(certificate_hash_data))

    @handles("GetInstalledCertificateIds")
    def on_get_installed_certificate_ids(self, certificate_type: str, **_: Any) -> Any:
        found = self.certificates.ids([certificate_type])
        if not found:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[h for _, h in found]
        )

    async def send_security_event(self, event_type: str, tech_info: str | None = None) -> Any:
        return await self.send(
            call.SecurityEventNotification(
                type=event_type, timestamp=iso(self.clock.now()), tech_info=tech_info
            )
        )
