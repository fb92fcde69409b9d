"""Operator commands as OCPP 2.0.1 requests (pure translations, no I/O)."""

from __future__ import annotations

from typing import Any

from ocpp.v201 import call

from handlers._time import ocpp_time
from handlers.commands import models as m

_PURPOSE = {
    "charger_max": "ChargingStationMaxProfile",
    "tx_default": "TxDefaultProfile",
    "tx": "TxProfile",
}
_TRIGGER = {"DiagnosticsStatusNotification": "LogStatusNotification"}


def _evse(evse_id: int | None, connector_id: int | None = None) -> dict[str, Any] | None:
    if not evse_id:
        return None
    evse: dict[str, Any] = {"id": evse_id}
    if connector_id is not None:
        evse["connector_id"] = connector_id
    return evse


def _variable_ref(ref: m.VariableRef) -> dict[str, Any]:
    component: dict[str, Any] = {"name": ref.component}
    if ref.instance:
        component["instance"] = ref.instance
    if ref.evse_id:
        component["evse"] = {"id": ref.evse_id}
    data: dict[str, Any] = {"component": component, "variable": {"name": ref.variable}}
    if ref.attribute_type:
        data["attribute_type"] = ref.attribute_type
    return data


def charging_profile(profile: m.ChargingProfile, request_id: int) -> dict[str, Any]:
    schedule = profile.schedule
    periods = [{k: v for k, v in p.model_dump().items() if v is not None} for p in schedule.periods]
    charging_schedule: dict[str, Any] = {
        "id": request_id,
        "charging_rate_unit": schedule.unit,
        "charging_schedule_period": periods,
    }
    if schedule.duration is not None:
        charging_schedule["duration"] = schedule.duration
    if schedule.start_schedule is not None:
        charging_schedule["start_schedule"] = ocpp_time(schedule.start_schedule)
    if schedule.min_charging_rate is not None:
        charging_schedule["min_charging_rate"] = schedule.min_charging_rate
    result: dict[str, Any] = {
        "id": profile.id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": _PURPOSE[profile.purpose],
        "charging_profile_kind": profile.kind.capitalize(),
        "charging_schedule": [charging_schedule],
    }
    if profile.transaction_id is not None:
        result["transaction_id"] = profile.transaction_id
    if profile.recurrency:
        result["recurrency_kind"] = profile.recurrency.capitalize()
    if profile.valid_from:
        result["valid_from"] = ocpp_time(profile.valid_from)
    if profile.valid_to:
        result["valid_to"] = ocpp_time(profile.valid_to)
    return result


def remote_start(cmd: m.RemoteStart, request_id: int) -> Any:
    return call.RequestStartTransaction(
        id_token={"id_token": cmd.id_token, "type": cmd.id_token_type},
        remote_start_id=request_id,
        evse_id=cmd.connector_id,
        group_id_token=_group(cmd.group_id_token),
        charging_profile=(
            None
            if cmd.charging_profile is None
            else charging_profile(cmd.charging_profile, request_id)
        ),
    )


def _group(group_id_token: str | None) -> dict[str, Any] | None:
    return None if group_id_token is None else {"id_token": group_id_token, "type": "Central"}


def remote_stop(cmd: m.RemoteStop, request_id: int) -> Any:
    return call.RequestStopTransaction(transaction_id=cmd.transaction_id)


def reset(cmd: m.Reset, request_id: int) -> Any:
    # 2.0.1 has no soft/hard: a charger resets as it can, now or once idle.
    return call.Reset(type="OnIdle" if cmd.when == "on_idle" else "Immediate", evse_id=cmd.evse_id)


def unlock_connector(cmd: m.UnlockConnector, request_id: int) -> Any:
    return call.UnlockConnector(evse_id=cmd.connector_id, connector_id=cmd.evse_connector_id)


def change_availability(cmd: m.ChangeAvailability, request_id: int) -> Any:
    return call.ChangeAvailability(
        operational_status="Operative" if cmd.operative else "Inoperative",
        evse=_evse(cmd.connector_id, cmd.evse_connector_id),
    )


def get_variables(cmd: m.GetVariables, request_id: int) -> Any:
    return call.GetVariables(get_variable_data=[_variable_ref(v) for v in cmd.variables])


def set_variables(cmd: m.SetVariables, request_id: int) -> Any:
    if any(v.variable == "BasicAuthPassword" for v in cmd.variables):
        # Imported here: handlers.commands.v16 imports this module.
        from handlers.commands.v16 import ROTATE_INSTEAD, NotInThisVersion

        raise NotInThisVersion(ROTATE_INSTEAD)
    data = [_variable_ref(v) | {"attribute_value": v.value} for v in cmd.variables]
    return call.SetVariables(set_variable_data=data)


def trigger_message(cmd: m.TriggerMessage, request_id: int) -> Any:
    return call.TriggerMessage(
        requested_message=_TRIGGER.get(cmd.message, cmd.message),
        evse=_evse(cmd.connector_id, cmd.evse_connector_id),
    )


def set_charging_profile(cmd: m.SetChargingProfile, request_id: int) -> Any:
    return call.SetChargingProfile(
        evse_id=cmd.connector_id, charging_profile=charging_profile(cmd.profile, request_id)
    )


def clear_charging_profile(cmd: m.ClearChargingProfile, request_id: int) -> Any:
    criteria: dict[str, Any] = {}
    if cmd.connector_id is not None:
        criteria["evse_id"] = cmd.connector_id
    if cmd.purpose:
        criteria["charging_profile_purpose"] = _PURPOSE[cmd.purpose]
    if cmd.stack_level is not None:
        criteria["stack_level"] = cmd.stack_level
    return call.ClearChargingProfile(
        charging_profile_id=cmd.profile_id, charging_profile_criteria=criteria or None
    )


def get_composite_schedule(cmd: m.GetCompositeSchedule, request_id: int) -> Any:
    return call.GetCompositeSchedule(
        duration=cmd.duration, evse_id=cmd.connector_id, charging_rate_unit=cmd.unit
    )


def data_transfer(cmd: m.DataTransfer, request_id: int) -> Any:
    return call.DataTransfer(vendor_id=cmd.vendor_id, message_id=cmd.message_id, data=cmd.data)


def firmware(cmd: m.UpdateFirmware) -> dict[str, Any]:
    """2.0.1 FirmwareType (also the 1.6 security extension's, which has the same fields)."""
    result: dict[str, Any] = {
        "location": cmd.location,
        "retrieve_date_time": ocpp_time(cmd.retrieve_at),
    }
    if cmd.install_at is not None:
        result["install_date_time"] = ocpp_time(cmd.install_at)
    if cmd.signing_certificate is not None:
        result["signing_certificate"] = cmd.signing_certificate
    if cmd.signature is not None:
        result["signature"] = cmd.signature
    return result


def update_firmware(cmd: m.UpdateFirmware, request_id: int) -> Any:
    return call.UpdateFirmware(
        request_id=request_id,
        firmware=firmware(cmd),
        retries=cmd.retries,
        retry_interval=cmd.retry_interval,
    )


def get_log(cmd: m.GetDiagnostics, request_id: int) -> Any:
    log: dict[str, Any] = {"remote_location": cmd.location}
    if cmd.start_time:
        log["oldest_timestamp"] = ocpp_time(cmd.start_time)
    if cmd.stop_time:
        log["latest_timestamp"] = ocpp_time(cmd.stop_time)
    return call.GetLog(
        log=log,
        log_type=cmd.log_type,
        request_id=request_id,
        retries=cmd.retries,
        retry_interval=cmd.retry_interval,
    )


def reserve_now(cmd: m.ReserveNow, request_id: int) -> Any:
    return call.ReserveNow(
        id=cmd.reservation_id if cmd.reservation_id is not None else request_id,
        expiry_date_time=ocpp_time(cmd.expires_at),
        id_token={"id_token": cmd.id_token, "type": cmd.id_token_type},
        evse_id=cmd.connector_id or None,
        connector_type=cmd.connector_type,
        group_id_token=_group(cmd.group_id_token),
    )


def cancel_reservation(cmd: m.CancelReservation, request_id: int) -> Any:
    return call.CancelReservation(reservation_id=cmd.reservation_id)


def send_local_list(cmd: m.SendLocalList, request_id: int) -> Any:
    entries: list[dict[str, Any]] = []
    for token in cmd.tokens:
        entry: dict[str, Any] = {
            "id_token": {"id_token": token.id_token, "type": token.id_token_type}
        }
        if token.status is not None:
            info: dict[str, Any] = {"status": token.status}
            if token.expires_at:
                info["cache_expiry_date_time"] = ocpp_time(token.expires_at)
            if token.group_id:
                info["group_id_token"] = {"id_token": token.group_id, "type": "Central"}
            entry["id_token_info"] = info
        entries.append(entry)
    return call.SendLocalList(
        version_number=cmd.version,
        update_type=cmd.update_type.capitalize(),
        local_authorization_list=entries or None,
    )


def get_local_list_version(cmd: m.NoArguments, request_id: int) -> Any:
    return call.GetLocalListVersion()


def clear_cache(cmd: m.NoArguments, request_id: int) -> Any:
    return call.ClearCache()
