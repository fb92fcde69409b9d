"""OCPP 2.0.1: the CSMS commands a 2.0.1 charging station answers.

Each handler translates the 2.0.1 payload and calls the version-neutral logic
of :class:`~charge_point_sim.commands.SimCharger`; the frames the station
sends itself are in :mod:`charge_point_sim.v201`. Each EVSE has exactly one
connector (``connectorId`` 1).
"""

from __future__ import annotations

from typing import Any

from ocpp import exceptions as ocpp_exceptions
from ocpp.v201 import call, call_result

from charge_point_sim.charger import handles
from charge_point_sim.clock import iso, parse_iso
from charge_point_sim.commands import SimCharger
from charge_point_sim.config import V201_VARIABLES, v201_value
from charge_point_sim.model import Reservation
from charge_point_sim.profiles import parse_v201


def id_token(id_tag: str) -> dict[str, str]:
    """The 2.0.1 ``IdTokenType`` the simulator sends for an id tag."""
    return {"id_token": id_tag, "type": "ISO14443"}


class V201Handlers(SimCharger):
    """The ``@on`` handlers of :class:`~charge_point_sim.v201.V201Charger`."""

    costs_received: list[tuple[float, str]]  # every CostUpdated (total, transaction id)

    # ----------------------------------------------------------- transactions
    @handles("RequestStartTransaction")
    def on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        def profile(conn_id: int) -> Any:
            return parse_v201(charging_profile or {}, conn_id)

        tag = str(id_token["id_token"])
        ok = self.remote_start(evse_id, tag, profile if charging_profile else None, remote_start_id)
        return call_result.RequestStartTransaction(status="Accepted" if ok else "Rejected")

    @handles("RequestStopTransaction")
    def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        s = self.find_session(transaction_id)
        ok = s is not None and self.stop_session(s.evse_id, "Remote")
        return call_result.RequestStopTransaction(status="Accepted" if ok else "Rejected")

    # ---------------------------------------------------------- smart charging
    @handles("SetChargingProfile")
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> Any:
        status = self.set_profile(evse_id, lambda: parse_v201(charging_profile, evse_id))
        return call_result.SetChargingProfile(status=status)

    @handles("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        crit = charging_profile_criteria or {}
        status = self.clear_profiles(
            charging_profile_id,
            crit.get("evse_id"),
            crit.get("charging_profile_purpose"),
            crit.get("stack_level"),
        )
        return call_result.ClearChargingProfile(status=status)

    @handles("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        result = self.composite(evse_id, duration, charging_rate_unit)
        if result is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        start, unit, periods = result
        return call_result.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": iso(start),
                "charging_rate_unit": unit,
                "charging_schedule_period": periods,
            },
        )

    # ---------------------------------------------------------------- billing
    @handles("CostUpdated")
    def on_cost_updated(self, total_cost: float, transaction_id: str, **_: Any) -> Any:
        self.costs_received.append((total_cost, transaction_id))
        if not self.cfg.cost_updates:
            raise ocpp_exceptions.NotImplementedError(
                description="this station has no TariffCostCtrlr"
            )
        return call_result.CostUpdated()

    # ------------------------------------------------------------ management
    @handles("Reset")
    def on_reset(self, type: str, evse_id: int | None = None, **_: Any) -> Any:
        status = self.request_reset("HardReset", "RemoteReset", type == "OnIdle", evse_id)
        return call_result.Reset(status=status)

    @handles("UnlockConnector")
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        conn = self.connectors.get(evse_id)
        if conn is None or connector_id != 1:
            status = "UnknownConnector"
        elif conn.session is not None:
            status = "OngoingAuthorizedTransaction"  # F05.FR.02: the session keeps running
        else:
            status = "Unlocked"
        return call_result.UnlockConnector(status=status)

    @handles("ChangeAvailability")
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        target = int(evse["id"]) if evse else 0
        status = self.change_availability(target, operational_status == "Operative")
        return call_result.ChangeAvailability(status=status)

    def _variable(self, item: dict[str, Any]) -> tuple[str | None, str]:
        comp, var = item["component"]["name"], item["variable"]["name"]
        key = V201_VARIABLES.get((comp, var))
        if key is not None and self.keys.get(key) is not None:
            return key, "Accepted"
        # A component is there if any of its variables is (no TariffCostCtrlr without cost).
        present = (c for (c, _), k in V201_VARIABLES.items() if self.keys.get(k) is not None)
        known = comp in set(present)
        return None, "UnknownVariable" if known else "UnknownComponent"

    @handles("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in get_variable_data:
            key, status = self._variable(item)
            result = {
                "attribute_status": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            entry = self.keys.get(key) if key else None
            if key is not None and entry is not None:
                result["attribute_value"] = v201_value(key, entry.value)
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @handles("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for item in set_variable_data:
            key, status = self._variable(item)
            if key is not None:
                outcome = self.keys.set(key, str(item["attribute_value"]))
                status = "Accepted" if outcome == "Accepted" else "Rejected"
            results.append(
                {
                    "attribute_status": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @handles("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        status = self.trigger_message(
            requested_message,
            int(evse["id"]) if evse else None,
            {
                "FirmwareStatusNotification": lambda: call.FirmwareStatusNotification(
                    status=self.firmware_status
                ),
                "LogStatusNotification": lambda: call.LogStatusNotification(
                    status=self.upload_status
                ),
            },
        )
        return call_result.TriggerMessage(status=status)

    @handles("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> Any:
        status, echo = self.data_transfer(vendor_id, message_id, data)
        return call_result.DataTransfer(status=status, data=echo)

    @handles("UpdateFirmware")
    def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        self.start_firmware_update(
            parse_iso(firmware["retrieve_date_time"]),
            lambda status: call.FirmwareStatusNotification(status=status, request_id=request_id),
        )
        return call_result.UpdateFirmware(status="Accepted")

    @handles("GetLog")
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        name = f"{log_type.lower()}-{self.cfg.charger_id}-{request_id}.log"
        self.start_upload(
            lambda status: call.LogStatusNotification(status=status, request_id=request_id)
        )
        return call_result.GetLog(status="Accepted", filename=name)

    # ----------------------------------------------------- reservations, auth
    @handles("ReserveNow")
    def on_reserve_now(
        self,
        id: int,
        expiry_date_time: str,
        id_token: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> Any:
        tag = str(id_token["id_token"])
        res = Reservation(id, tag, parse_iso(expiry_date_time))
        conn = self.connectors.get(evse_id) if evse_id else self.free_connector(tag)
        status = self.reserve(conn.id, res) if conn is not None else "Occupied"
        return call_result.ReserveNow(status=status)

    @handles("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        ok = self.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status="Accepted" if ok else "Rejected")

    @handles("SendLocalList")
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        entries = [
            (
                str(e["id_token"]["id_token"]),
                str(e["id_token_info"]["status"]) if e.get("id_token_info") else None,
            )
            for e in local_authorization_list or []
        ]
        status = self.apply_local_list(
            version_number, update_type == "Full", entries, disabled="Failed"
        )
        return call_result.SendLocalList(status=status)

    @handles("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(version_number=self.local_list_version)

    @handles("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status=self.clear_cache())
