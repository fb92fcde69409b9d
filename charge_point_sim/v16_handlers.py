"""OCPP 1.6J: the CSMS commands a 1.6 charger answers.

Each handler translates the 1.6 payload and calls the version-neutral logic
of :class:`~charge_point_sim.commands.SimCharger`; the frames the charger
sends itself are in :mod:`charge_point_sim.v16`.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call, call_result

from charge_point_sim.charger import handles
from charge_point_sim.clock import iso, parse_iso
from charge_point_sim.commands import SimCharger
from charge_point_sim.model import Reservation
from charge_point_sim.profiles import parse_v16


class V16Handlers(SimCharger):
    """The ``@on`` handlers of :class:`~charge_point_sim.v16.V16Charger`."""

    # ----------------------------------------------------------- transactions
    @handles("RemoteStartTransaction")
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: Any = None, **_: Any
    ) -> Any:
        def profile(conn_id: int) -> Any:
            return parse_v16(charging_profile, conn_id)

        ok = self.remote_start(connector_id, id_tag, profile if charging_profile else None)
        return call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @handles("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        s = self.find_session(str(transaction_id))
        ok = s is not None and self.stop_session(s.evse_id, "Remote")
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    # ---------------------------------------------------------- smart charging
    @handles("SetChargingProfile")
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        status = self.set_profile(
            connector_id, lambda: parse_v16(cs_charging_profiles, connector_id)
        )
        return call_result.SetChargingProfile(status=status)

    @handles("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        status = self.clear_profiles(id, connector_id, charging_profile_purpose, stack_level)
        return call_result.ClearChargingProfile(status=status)

    @handles("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        result = self.composite(connector_id, duration, charging_rate_unit)
        if result is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        start, unit, periods = result
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(start),
            charging_schedule={
                "duration": duration,
                "start_schedule": iso(start),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )

    # ------------------------------------------------------------ management
    @handles("Reset")
    def on_reset(self, type: str, **_: Any) -> Any:
        reason = "HardReset" if type == "Hard" else "SoftReset"
        return call_result.Reset(status=self.request_reset(reason, "PowerUp"))

    @handles("UnlockConnector")
    def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        ok = self.unlock(connector_id)
        return call_result.UnlockConnector(status="Unlocked" if ok else "NotSupported")

    @handles("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        status = self.change_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @handles("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        names = key if key else sorted(self.keys.keys)
        known, unknown = [], []
        for name in names:
            entry = self.keys.get(name)
            if entry is None:
                unknown.append(name)
            else:
                known.append({"key": name, "readonly": entry.readonly, "value": entry.value})
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @handles("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        return call_result.ChangeConfiguration(status=self.keys.set(key, value))

    @handles("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> Any:
        status = self.trigger_message(
            requested_message,
            connector_id,
            {
                "FirmwareStatusNotification": lambda: call.FirmwareStatusNotification(
                    status=self.firmware_status
                ),
                "DiagnosticsStatusNotification": lambda: call.DiagnosticsStatusNotification(
                    status=self.upload_status
                ),
            },
        )
        return call_result.TriggerMessage(status=status)

    @handles("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> Any:
        status, echo = self.data_transfer(vendor_id, message_id, data)
        return call_result.DataTransfer(status=status, data=echo)

    @handles("UpdateFirmware")
    def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        self.start_firmware_update(
            parse_iso(retrieve_date), lambda status: call.FirmwareStatusNotification(status=status)
        )
        return call_result.UpdateFirmware()

    @handles("GetDiagnostics")
    def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        name = f"diagnostics-{self.cfg.charger_id}-{self.clock.now():%Y%m%d%H%M%S}.log"
        self.start_upload(lambda status: call.DiagnosticsStatusNotification(status=status))
        return call_result.GetDiagnostics(file_name=name)

    # ----------------------------------------------------- reservations, auth
    @handles("ReserveNow")
    def on_reserve_now(
        self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, **_: Any
    ) -> Any:
        res = Reservation(reservation_id, id_tag, parse_iso(expiry_date))
        if connector_id == 0:
            conn = self.free_connector(id_tag)
            status = self.reserve(conn.id, res) if conn is not None else "Occupied"
        else:
            status = self.reserve(connector_id, res)
        return call_result.ReserveNow(status=status)

    @handles("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        ok = self.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status="Accepted" if ok else "Rejected")

    @handles("SendLocalList")
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = [
            (str(e["id_tag"]), str(e["id_tag_info"]["status"]) if e.get("id_tag_info") else None)
            for e in local_authorization_list or []
        ]
        status = self.apply_local_list(
            list_version, update_type == "Full", entries, disabled="NotSupported"
        )
        return call_result.SendLocalList(status=status)

    @handles("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(list_version=self.local_list_version)

    @handles("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status=self.clear_cache())
