"""OCPP 1.6J: charger-initiated messages of the Core, Firmware and Diagnostics profiles."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from csms.central import Authorization
from csms.connection import OcppConnection
from csms.events import (
    AuthorizationRequested,
    ChargerBooted,
    ConnectorStatus,
    ConnectorStatusChanged,
    DataTransferReceived,
    FirmwareStatusChanged,
    MeterSampled,
    Protocol,
    RegistrationStatus,
    SessionEnded,
    SessionStarted,
    UploadStatusChanged,
)
from csms.meter import earliest, parse_timestamp, readable_meter, readable_time, samples_from_v16
from handlers._time import now, ocpp_time
from handlers.v16_security import V16Security

# 1.6's nine connector states onto the five of the shared model; the original
# is kept as the event's ``detail``.
_STATUS = {
    "Available": ConnectorStatus.AVAILABLE,
    "Preparing": ConnectorStatus.OCCUPIED,
    "Charging": ConnectorStatus.OCCUPIED,
    "SuspendedEVSE": ConnectorStatus.OCCUPIED,
    "SuspendedEV": ConnectorStatus.OCCUPIED,
    "Finishing": ConnectorStatus.OCCUPIED,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}


def _id_tag_info(authorization: Authorization) -> dict[str, Any]:
    info: dict[str, Any] = {"status": authorization.status.value}
    if authorization.expires_at is not None:
        info["expiry_date"] = ocpp_time(authorization.expires_at)
    if authorization.group_id is not None:
        info["parent_id_tag"] = authorization.group_id
    return info


class ChargePoint16(V16Security, OcppConnection, ChargePoint):  # type: ignore[misc]
    protocol = Protocol.V16
    known_actions = frozenset(action.value for action in Action)

    @on(Action.boot_notification)
    async def on_boot_notification(
        self,
        charge_point_vendor: str,
        charge_point_model: str,
        charge_point_serial_number: str | None = None,
        charge_box_serial_number: str | None = None,
        firmware_version: str | None = None,
        iccid: str | None = None,
        imsi: str | None = None,
        meter_type: str | None = None,
        meter_serial_number: str | None = None,
    ) -> call_result.BootNotification:
        booted = ChargerBooted(
            charge_point_id=self.id,
            occurred_at=now(),
            protocol=self.protocol,
            vendor=charge_point_vendor,
            model=charge_point_model,
            serial_number=charge_point_serial_number or charge_box_serial_number,
            firmware_version=firmware_version,
            iccid=iccid,
            imsi=imsi,
            meter_type=meter_type,
            meter_serial_number=meter_serial_number,
        )
        self.registration = await self.central.boot(booted, self.generation)
        accepted = self.registration is RegistrationStatus.ACCEPTED
        return call_result.BootNotification(
            current_time=ocpp_time(now()),
            interval=(
                self.settings.heartbeat_interval if accepted else self.settings.boot_retry_interval
            ),
            status=self.registration.value,
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=ocpp_time(now()))

    @on(Action.status_notification)
    async def on_status_notification(
        self,
        connector_id: int,
        error_code: str,
        status: str,
        timestamp: str | None = None,
        info: str | None = None,
        vendor_id: str | None = None,
        vendor_error_code: str | None = None,
    ) -> call_result.StatusNotification:
        await self.central.record(
            ConnectorStatusChanged(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(timestamp) if timestamp else now(),
                evse_id=connector_id,
                connector_id=connector_id,
                status=_STATUS[status],
                detail=status,
                error_code=None if error_code == "NoError" else error_code,
                info=info,
                vendor_error_code=vendor_error_code,
            )
        )
        return call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
    ) -> call_result.MeterValues:
        samples = samples_from_v16(meter_value)
        await self.central.record(
            MeterSampled(
                charge_point_id=self.id,
                occurred_at=earliest(samples) or now(),
                evse_id=connector_id,
                connector_id=connector_id,
                transaction_id=None if transaction_id is None else str(transaction_id),
                samples=samples,
            )
        )
        return call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        authorization = await self.central.authorize(
            AuthorizationRequested(charge_point_id=self.id, occurred_at=now(), id_token=id_tag)
        )
        return call_result.Authorize(id_tag_info=_id_tag_info(authorization))

    @on(Action.start_transaction)
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: str,
        reservation_id: int | None = None,
    ) -> call_result.StartTransaction:
        outcome = await self.central.start_session(
            SessionStarted(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(timestamp),
                evse_id=connector_id,
                connector_id=connector_id,
                transaction_id=None,
                id_token=id_tag,
                meter_start_wh=float(meter_start),
                reservation_id=reservation_id,
            ),
            self.protocol,
        )
        assert outcome.authorization is not None
        return call_result.StartTransaction(
            transaction_id=int(outcome.transaction_id),
            id_tag_info=_id_tag_info(outcome.authorization),
        )

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
    ) -> call_result.StopTransaction:
        # An end is always stored: what cannot be is left out and named (15.2).
        rejected: list[str] = []
        samples = samples_from_v16(transaction_data or (), rejected)
        authorization = await self.central.update_session(
            SessionEnded(
                charge_point_id=self.id,
                occurred_at=readable_time(timestamp, rejected),
                transaction_id=str(transaction_id),
                id_token=id_tag,
                meter_stop_wh=readable_meter(meter_stop, "meterStop", rejected),
                # 1.6: "If reason is omitted, the reason is Local".
                stop_reason=reason or "Local",
                samples=samples,
                rejected=tuple(rejected),
            ),
            self.protocol,
        )
        return call_result.StopTransaction(
            id_tag_info=None if authorization is None else _id_tag_info(authorization)
        )

    @on(Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> call_result.DataTransfer:
        await self.central.record(
            DataTransferReceived(
                charge_point_id=self.id,
                occurred_at=now(),
                vendor_id=vendor_id,
                message_id=message_id,
                data=data,
            )
        )
        # No vendor extension is installed: the spec's answer is UnknownVendorId.
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(
        self, status: str
    ) -> call_result.FirmwareStatusNotification:
        await self.central.record(
            FirmwareStatusChanged(charge_point_id=self.id, occurred_at=now(), status=status)
        )
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(
        self, status: str
    ) -> call_result.DiagnosticsStatusNotification:
        await self.central.record(
            UploadStatusChanged(
                charge_point_id=self.id, occurred_at=now(), kind="diagnostics", status=status
            )
        )
        return call_result.DiagnosticsStatusNotification()
