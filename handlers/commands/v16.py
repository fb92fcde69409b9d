"""Operator commands as OCPP 1.6 requests (pure translations, no I/O)."""

from __future__ import annotations

import json
from typing import Any

from ocpp.v16 import call

from handlers._time import ocpp_time
from handlers.commands import models as m
from handlers.commands.v201 import firmware as v201_firmware

_PURPOSE = {
    "charger_max": "ChargePointMaxProfile",
    "tx_default": "TxDefaultProfile",
    "tx": "TxProfile",
}
_TRIGGER_ONLY_201 = {
    "TransactionEvent",
    "SignV2GCertificate",
    "SignCombinedCertificate",
    "PublishFirmwareStatusNotification",
}
# Messages only the security extension's ExtendedTriggerMessage can request, by 1.6 name.
_EXTENDED_TRIGGER = {
    "LogStatusNotification": "LogStatusNotification",
    "SignChargingStationCertificate": "SignChargePointCertificate",
}


ROTATE_INSTEAD = (
    "the charger password is changed with POST /api/v1/chargers/{id}/password-rotation, "
    "which keeps the old one valid until the charger has reconnected with the new one"
)


class NotInThisVersion(ValueError):
    """The command (or one of its options) has no OCPP 1.6 equivalent."""


def _transaction_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise NotInThisVersion(f"1.6 transaction ids are integers, got {raw!r}") from None


def charging_profile(profile: m.ChargingProfile) -> dict[str, Any]:
    schedule = profile.schedule
    result: dict[str, Any] = {
        "charging_profile_id": profile.id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": _PURPOSE[profile.purpose],
        "charging_profile_kind": profile.kind.capitalize(),
        "charging_schedule": {
            "charging_rate_unit": schedule.unit,
            "charging_schedule_period": [
                {k: v for k, v in p.model_dump().items() if v is not None} for p in schedule.periods
            ],
        },
    }
    if profile.transaction_id is not None:
        result["transaction_id"] = _transaction_id(profile.transaction_id)
    if profile.recurrency:
        result["recurrency_kind"] = profile.recurrency.capitalize()
    if profile.valid_from:
        result["valid_from"] = ocpp_time(profile.valid_from)
    if profile.valid_to:
        result["valid_to"] = ocpp_time(profile.valid_to)
    if schedule.duration is not None:
        result["charging_schedule"]["duration"] = schedule.duration
    if schedule.start_schedule is not None:
        result["charging_schedule"]["start_schedule"] = ocpp_time(schedule.start_schedule)
    if schedule.min_charging_rate is not None:
        result["charging_schedule"]["min_charging_rate"] = schedule.min_charging_rate
    return result


def remote_start(cmd: m.RemoteStart, request_id: int) -> Any:
    if cmd.group_id_token is not None:
        raise NotInThisVersion("1.6 RemoteStartTransaction has no group id token")
    profile = cmd.charging_profile
    if profile is not None and profile.purpose != "tx":
        raise NotInThisVersion("1.6 RemoteStartTransaction only carries a TxProfile (purpose tx)")
    return call.RemoteStartTransaction(
        id_tag=cmd.id_token,
        connector_id=cmd.connector_id,
        charging_profile=None if profile is None else charging_profile(profile),
    )


def remote_stop(cmd: m.RemoteStop, request_id: int) -> Any:
    return call.RemoteStopTransaction(transaction_id=_transaction_id(cmd.transaction_id))


def reset(cmd: m.Reset, request_id: int) -> Any:
    if cmd.when == "on_idle":
        raise NotInThisVersion("1.6 Reset has no on_idle; use when=immediate")
    if cmd.evse_id is not None:
        raise NotInThisVersion("1.6 Reset resets the whole charger; leave evse_id out")
    return call.Reset(type=cmd.type.capitalize())


def unlock_connector(cmd: m.UnlockConnector, request_id: int) -> Any:
    return call.UnlockConnector(connector_id=cmd.connector_id)


def change_availability(cmd: m.ChangeAvailability, request_id: int) -> Any:
    if cmd.evse_connector_id is not None:
        raise NotInThisVersion("1.6 ChangeAvailability has no evse_connector_id")
    return call.ChangeAvailability(
        connector_id=cmd.connector_id, type="Operative" if cmd.operative else "Inoperative"
    )


def get_configuration(cmd: m.GetConfiguration, request_id: int) -> Any:
    return call.GetConfiguration(key=cmd.keys)


def change_configuration(cmd: m.ChangeConfiguration, request_id: int) -> Any:
    if cmd.key == "AuthorizationKey":
        raise NotInThisVersion(ROTATE_INSTEAD)
    return call.ChangeConfiguration(key=cmd.key, value=cmd.value)


def trigger_message(cmd: m.TriggerMessage, request_id: int) -> Any:
    if cmd.message in _TRIGGER_ONLY_201:
        raise NotInThisVersion(f"1.6 TriggerMessage cannot request {cmd.message}")
    if cmd.evse_connector_id is not None:
        raise NotInThisVersion("1.6 TriggerMessage has no evse_connector_id")
    if cmd.message in _EXTENDED_TRIGGER:
        return call.ExtendedTriggerMessage(
            requested_message=_EXTENDED_TRIGGER[cmd.message], connector_id=cmd.connector_id
        )
    return call.TriggerMessage(requested_message=cmd.message, connector_id=cmd.connector_id)


def set_charging_profile(cmd: m.SetChargingProfile, request_id: int) -> Any:
    return call.SetChargingProfile(
        connector_id=cmd.connector_id, cs_charging_profiles=charging_profile(cmd.profile)
    )


def clear_charging_profile(cmd: m.ClearChargingProfile, request_id: int) -> Any:
    return call.ClearChargingProfile(
        id=cmd.profile_id,
        connector_id=cmd.connector_id,
        charging_profile_purpose=_PURPOSE[cmd.purpose] if cmd.purpose else None,
        stack_level=cmd.stack_level,
    )


def get_composite_schedule(cmd: m.GetCompositeSchedule, request_id: int) -> Any:
    return call.GetCompositeSchedule(
        connector_id=cmd.connector_id, duration=cmd.duration, charging_rate_unit=cmd.unit
    )


def data_transfer(cmd: m.DataTransfer, request_id: int) -> Any:
    data = cmd.data if cmd.data is None or isinstance(cmd.data, str) else json.dumps(cmd.data)
    return call.DataTransfer(vendor_id=cmd.vendor_id, message_id=cmd.message_id, data=data)


def update_firmware(cmd: m.UpdateFirmware, request_id: int) -> Any:
    """UpdateFirmware; SignedUpdateFirmware (security extension) for a signed image."""
    if cmd.signature is not None or cmd.signing_certificate is not None:
        if cmd.signature is None or cmd.signing_certificate is None:
            raise NotInThisVersion(
                "1.6 SignedUpdateFirmware needs both signature and signing_certificate"
            )
        return call.SignedUpdateFirmware(
            request_id=request_id,
            firmware=v201_firmware(cmd),
            retries=cmd.retries,
            retry_interval=cmd.retry_interval,
        )
    if cmd.install_at is not None:
        raise NotInThisVersion("1.6 UpdateFirmware has no install time (only a signed update)")
    return call.UpdateFirmware(
        location=cmd.location,
        retrieve_date=ocpp_time(cmd.retrieve_at),
        retries=cmd.retries,
        retry_interval=cmd.retry_interval,
    )


def get_diagnostics(cmd: m.GetDiagnostics, request_id: int) -> Any:
    if cmd.log_type != "DiagnosticsLog":
        raise NotInThisVersion("1.6 GetDiagnostics only uploads the diagnostics log")
    return call.GetDiagnostics(
        location=cmd.location,
        retries=cmd.retries,
        retry_interval=cmd.retry_interval,
        start_time=ocpp_time(cmd.start_time) if cmd.start_time else None,
        stop_time=ocpp_time(cmd.stop_time) if cmd.stop_time else None,
    )


def reserve_now(cmd: m.ReserveNow, request_id: int) -> Any:
    if cmd.connector_type is not None:
        raise NotInThisVersion("1.6 ReserveNow has no connector_type")
    return call.ReserveNow(
        parent_id_tag=cmd.group_id_token,
        connector_id=cmd.connector_id or 0,
        expiry_date=ocpp_time(cmd.expires_at),
        id_tag=cmd.id_token,
        reservation_id=cmd.reservation_id if cmd.reservation_id is not None else request_id,
    )


def cancel_reservation(cmd: m.CancelReservation, request_id: int) -> Any:
    return call.CancelReservation(reservation_id=cmd.reservation_id)


def send_local_list(cmd: m.SendLocalList, request_id: int) -> Any:
    entries: list[dict[str, Any]] = []
    for token in cmd.tokens:
        entry: dict[str, Any] = {"id_tag": token.id_token}
        if token.status is not None:
            info: dict[str, Any] = {"status": token.status}
            if token.expires_at:
                info["expiry_date"] = ocpp_time(token.expires_at)
            if token.group_id:
                info["parent_id_tag"] = token.group_id
            entry["id_tag_info"] = info
        entries.append(entry)
    return call.SendLocalList(
        list_version=cmd.version,
        update_type=cmd.update_type.capitalize(),
        local_authorization_list=entries,
    )


def get_local_list_version(cmd: m.NoArguments, request_id: int) -> Any:
    return call.GetLocalListVersion()


def clear_cache(cmd: m.NoArguments, request_id: int) -> Any:
    return call.ClearCache()
