"""OCPP 2.0.1: certificates, firmware publication and the messages a station sends on
its own about security, ISO 15118 charging needs and external limits.

The ``send_*`` / ``request_*`` methods are what a real station does when its
EV, its local energy manager or its security monitor says so; tests (and
fault scenarios) call them to drive those flows against a CSMS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ocpp.v201 import call, call_result

from charge_point_sim.charger import handles
from charge_point_sim.clock import iso
from charge_point_sim.security import SecurityCommon
from charge_point_sim.uploads import start_log_upload

_PRIORITY = ("OCPPCommCtrlr", "NetworkConfigurationPriority")


def _is(item: dict[str, Any], name: tuple[str, str]) -> bool:
    return (item["component"]["name"], item["variable"]["name"]) == name


class V201Security(SecurityCommon):
    """Mixed into :class:`~charge_point_sim.v201.V201Charger` before the basic handlers."""

    published: dict[str, str] | None = None
    publish_status: str = "Idle"
    network_priority: str = "0"

    @property
    def network_profiles(self) -> dict[int, dict[str, Any]]:
        profiles: dict[int, dict[str, Any]] | None = getattr(self, "_network_profiles", None)
        if profiles is None:
            profiles = {}
            self._network_profiles = profiles
        return profiles

    def trigger_message(
        self, requested: str, target: int | None, messages: Mapping[str, Callable[[], Any]]
    ) -> str:
        extra: dict[str, Callable[[], Any]] = {
            "SignChargingStationCertificate": lambda: call.SignCertificate(
                csr=self.certificates.csr_pem(), certificate_type="ChargingStationCertificate"
            ),
            "PublishFirmwareStatusNotification": lambda: call.PublishFirmwareStatusNotification(
                status=self.publish_status
            ),
        }
        return super().trigger_message(requested, target, {**messages, **extra})

    # ------------------------------------------------------------ certificates
    async def request_certificate(
        self, certificate_type: str = "ChargingStationCertificate"
    ) -> Any:
        """SignCertificate with a fresh key's CSR (A02: the station renews its certificate;
        A03 / ISO 15118: its V2G certificate)."""
        return await self.send(
            call.SignCertificate(csr=self.certificates.csr_pem(), certificate_type=certificate_type)
        )

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
        status = self.certificates.delete(certificate_hash_data)
        return call_result.DeleteCertificate(status=status)

    @handles("GetInstalledCertificateIds")
    def on_get_installed_certificate_ids(
        self, certificate_type: list[str] | None = None, **_: Any
    ) -> Any:
        found = self.certificates.ids(certificate_type)
        if not found:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        chain = [{"certificate_type": t, "certificate_hash_data": h} for t, h in found]
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=chain
        )

    async def check_certificate_status(self, ocsp_request_data: dict[str, Any]) -> Any:
        return await self.send(call.GetCertificateStatus(ocsp_request_data=ocsp_request_data))

    async def request_ev_certificate(self, exi_request: str) -> Any:
        return await self.send(
            call.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef",
                action="Install",
                exi_request=exi_request,
            )
        )

    async def send_security_event(self, event_type: str, tech_info: str | None = None) -> Any:
        return await self.send(
            call.SecurityEventNotification(
                type=event_type, timestamp=iso(self.clock.now()), tech_info=tech_info
            )
        )

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

    @handles("SetNetworkProfile")
    def on_set_network_profile(
        self, configuration_slot: int, connection_data: dict[str, Any], **_: Any
    ) -> Any:
        self.network_profiles[configuration_slot] = connection_data
        return call_result.SetNetworkProfile(status="Accepted")

    @handles("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        """OCPPCommCtrlr.NetworkConfigurationPriority from here; the rest as usual."""
        results: list[Any] = []
        for item in get_variable_data:
            if _is(item, _PRIORITY):
                results.append(
                    {
                        "attribute_status": "Accepted",
                        "attribute_value": self.network_priority,
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                )
            else:
                answer = super().on_get_variables([item], **kwargs)  # type: ignore[misc]
                results.extend(answer.get_variable_result)
        return call_result.GetVariables(get_variable_result=results)

    @handles("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        """SecurityCtrlr.BasicAuthPassword: take it and reconnect;
        NetworkConfigurationPriority: slots that have a network profile; the rest as usual."""
        results: list[Any] = []
        for item in set_variable_data:
            if _is(item, _PRIORITY):
                slots = str(item["attribute_value"]).split(",")
                ok = all(
                    s.isdigit() and (int(s) in self.network_profiles or s == "0") for s in slots
                )
                if ok:
                    self.network_priority = str(item["attribute_value"])
                results.append(
                    {
                        "attribute_status": "RebootRequired" if ok else "Rejected",
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                )
                continue
            if (item["component"]["name"], item["variable"]["name"]) == (
                "SecurityCtrlr",
                "BasicAuthPassword",
            ):
                ok = 16 <= len(str(item["attribute_value"])) <= 40
                if ok:
                    self.take_password(str(item["attribute_value"]))
                results.append(
                    {
                        "attribute_status": "Accepted" if ok else "Rejected",
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                )
            else:
                answer = super().on_set_variables([item], **kwargs)  # type: ignore[misc]
                results.extend(answer.set_variable_result)
        return call_result.SetVariables(set_variable_result=results)

    # ---------------------------------------------------- firmware publication
    @handles("PublishFirmware")
    def on_publish_firmware(self, location: str, checksum: str, request_id: int, **_: Any) -> Any:
        self.published = {"checksum": checksum, "location": location}

        async def progress() -> None:
            for status in ("Downloading", "Downloaded", "ChecksumVerified", "Published"):
                self.publish_status = status
                url = f"http://{self.cfg.charger_id}.local/firmware/{checksum}"
                await self.try_send(
                    call.PublishFirmwareStatusNotification(
                        status=status,
                        location=[url] if status == "Published" else None,
                        request_id=request_id,
                    )
                )

        self.defer(progress)
        return call_result.PublishFirmware(status="Accepted")

    @handles("UnpublishFirmware")
    def on_unpublish_firmware(self, checksum: str, **_: Any) -> Any:
        published = self.published
        if not published or published["checksum"] != checksum:
            return call_result.UnpublishFirmware(status="NoFirmware")
        self.published = None
        return call_result.UnpublishFirmware(status="Unpublished")

    # ---------------------------------------------- ISO 15118 and local limits
    async def send_charging_needs(
        self, evse_id: int, departure: datetime, energy_wh: float, max_current_a: float = 32.0
    ) -> Any:
        return await self.send(
            call.NotifyEVChargingNeeds(
                evse_id=evse_id,
                charging_needs={
                    "requested_energy_transfer": "AC_three_phase",
                    "departure_time": iso(departure),
                    "ac_charging_parameters": {
                        "energy_amount": int(energy_wh),
                        "ev_min_current": 6,
                        "ev_max_current": int(max_current_a),
                        "ev_max_voltage": 400,
                    },
                },
            )
        )

    async def send_ev_charging_schedule(self, evse_id: int, limit_a: float) -> Any:
        return await self.send(
            call.NotifyEVChargingSchedule(
                time_base=iso(self.clock.now()),
                evse_id=evse_id,
                charging_schedule={
                    "id": 1,
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": limit_a}],
                },
            )
        )

    async def send_charging_limit(
        self, source: str, limit_a: float, evse_id: int | None = None, grid_critical: bool = False
    ) -> Any:
        return await self.send(
            call.NotifyChargingLimit(
                charging_limit={"charging_limit_source": source, "is_grid_critical": grid_critical},
                evse_id=evse_id,
                charging_schedule=[
                    {
                        "id": 1,
                        "charging_rate_unit": "A",
                        "charging_schedule_period": [{"start_period": 0, "limit": limit_a}],
                    }
                ],
            )
        )

    async def clear_charging_limit(self, source: str, evse_id: int | None = None) -> Any:
        return await self.send(
            call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id)
        )
