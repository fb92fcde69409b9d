"""OCPP 2.0.1: charger-initiated messages the CSMS handles."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action

from csms.central import Authorization, SessionCost
from csms.connection import OcppConnection
from csms.events import (
    AuthorizationRequested,
    ChargerBooted,
    ChargerEventsNotified,
    ConnectorStatus,
    ConnectorStatusChanged,
    DataTransferReceived,
    FirmwareStatusChanged,
    MeterSampled,
    Protocol,
    RegistrationStatus,
    ReportReceived,
    ReservationStatusChanged,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
    UploadStatusChanged,
)
from csms.meter import earliest, parse_timestamp, readable_time, samples_from_v201
from handlers._time import now, ocpp_time
from handlers.v201_reports import V201Reports
from handlers.v201_security import V201Security


def _id_token_info(authorization: Authorization) -> dict[str, Any]:
    info: dict[str, Any] = {"status": authorization.status.value}
    if authorization.expires_at is not None:
        info["cache_expiry_date_time"] = ocpp_time(authorization.expires_at)
    if authorization.group_id is not None:
        info["group_id_token"] = {"id_token": authorization.group_id, "type": "Central"}
    return info


class ChargePoint201(V201Reports, V201Security, OcppConnection, ChargePoint):  # type: ignore[misc]
    protocol = Protocol.V201
    known_actions = frozenset(action.value for action in Action)

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> call_result.BootNotification:
        modem = charging_station.get("modem") or {}
        booted = ChargerBooted(
            charge_point_id=self.id,
            occurred_at=now(),
            protocol=self.protocol,
            vendor=charging_station["vendor_name"],
            model=charging_station["model"],
            serial_number=charging_station.get("serial_number"),
            firmware_version=charging_station.get("firmware_version"),
            reason=reason,
            iccid=modem.get("iccid"),
            imsi=modem.get("imsi"),
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
    async def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=ocpp_time(now()))

    @on(Action.status_notification)
    async def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> call_result.StatusNotification:
        await self.central.record(
            ConnectorStatusChanged(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(timestamp),
                evse_id=evse_id,
                connector_id=connector_id,
                status=ConnectorStatus(connector_status),
            )
        )
        return call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> call_result.MeterValues:
        samples = samples_from_v201(meter_value)
        await self.central.record(
            MeterSampled(
                charge_point_id=self.id,
                occurred_at=earliest(samples) or now(),
                evse_id=evse_id,
                connector_id=None,
                transaction_id=None,
                samples=samples,
            )
        )
        return call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result.Authorize:
        authorization = await self.central.authorize(
            AuthorizationRequested(
                charge_point_id=self.id,
                occurred_at=now(),
                id_token=id_token["id_token"],
                token_type=id_token["type"],
            )
        )
        return call_result.Authorize(id_token_info=_id_token_info(authorization))

    @on(Action.transaction_event)
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[dict[str, Any]] | None = None,
        offline: bool = False,
        reservation_id: int | None = None,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> call_result.TransactionEvent:
        # An end is always stored: what cannot be is left out and named (15.2).
        rejected: list[str] | None = [] if event_type == "Ended" else None
        common: dict[str, Any] = {
            "charge_point_id": self.id,
            "occurred_at": (
                parse_timestamp(timestamp)
                if rejected is None
                else readable_time(timestamp, rejected)
            ),
            "transaction_id": transaction_info["transaction_id"],
            "evse_id": evse["id"] if evse else None,
            "connector_id": evse.get("connector_id") if evse else None,
            "id_token": id_token["id_token"] if id_token else None,
            "token_type": id_token["type"] if id_token else None,
            "trigger_reason": trigger_reason,
            "seq_no": seq_no,
            "offline": offline,
            "samples": samples_from_v201(meter_value or (), rejected),
        }
        authorization: Authorization | None
        cost: SessionCost | None = None
        if event_type == "Started":
            outcome = await self.central.start_session(
                SessionStarted(**common, reservation_id=reservation_id), self.protocol
            )
            authorization = outcome.authorization
        elif event_type == "Updated":
            authorization = await self.central.update_session(
                SessionUpdated(**common, charging_state=transaction_info.get("charging_state")),
                self.protocol,
            )
        else:
            # I02/I03: the final cost, as billing priced it in the end's transaction.
            ended = await self.central.end_session(
                SessionEnded(
                    **common,
                    # 2.0.1: stoppedReason is only given when it is not "Local".
                    stop_reason=transaction_info.get("stopped_reason") or "Local",
                    rejected=tuple(rejected or ()),
                ),
                self.protocol,
                want_cost=True,
            )
            authorization, cost = ended.authorization, ended.cost
        total_cost, message = None, None
        if cost is not None:
            total_cost = cost.total_cost
            message = {"format": "UTF8", "content": f"Total: {cost.total_cost:.2f} {cost.currency}"}
        return call_result.TransactionEvent(
            id_token_info=None if authorization is None else _id_token_info(authorization),
            total_cost=total_cost,
            updated_personal_message=message,
        )

    @on(Action.notify_event)
    async def on_notify_event(
        self,
        generated_at: str,
        seq_no: int,
        event_data: list[dict[str, Any]],
        tbc: bool = False,
        **_: Any,
    ) -> call_result.NotifyEvent:
        await self.central.record(
            ChargerEventsNotified(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(generated_at, "generatedAt"),
                seq_no=seq_no,
                tbc=tbc,
                event_data=tuple(event_data),
            )
        )
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    async def on_security_event_notification(
        self, type: str, timestamp: str, tech_info: str | None = None, **_: Any
    ) -> call_result.SecurityEventNotification:
        await self._security_event(type, timestamp, tech_info)
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(
        self, status: str, request_id: int | None = None, **_: Any
    ) -> call_result.FirmwareStatusNotification:
        await self.central.record(
            FirmwareStatusChanged(
                charge_point_id=self.id, occurred_at=now(), status=status, request_id=request_id
            )
        )
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status_notification(
        self, status: str, request_id: int | None = None, **_: Any
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

    @on(Action.notify_report)
    async def on_notify_report(
        self,
        request_id: int,
        generated_at: str,
        seq_no: int,
        tbc: bool = False,
        report_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.NotifyReport:
        await self.central.record(
            ReportReceived(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(generated_at, "generatedAt"),
                request_id=request_id,
                seq_no=seq_no,
                tbc=tbc,
                report_data=tuple(report_data or ()),
            )
        )
        return call_result.NotifyReport()

    @on(Action.reservation_status_update)
    async def on_reservation_status_update(
        self, reservation_id: int, reservation_update_status: str, **_: Any
    ) -> call_result.ReservationStatusUpdate:
        await self.central.record(
            ReservationStatusChanged(
                charge_point_id=self.id,
                occurred_at=now(),
                reservation_id=reservation_id,
                status=reservation_update_status,
            )
        )
        return call_result.ReservationStatusUpdate()

    @on(Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
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
        return call_result.DataTransfer(status="UnknownVendorId")
