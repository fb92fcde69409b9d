"""OCPP 2.0.1: reports and smart-charging inputs a charging station sends.

Monitoring reports, display messages, customer information, charging
profiles, EV charging schedules and firmware publication are stored as
reported (``charger_reports``, monitors also in ``variable_monitors``); ISO
15118 charging needs and external limits go to their own tables, where the
smart-charging planner reads them (:mod:`csms.storage.charging_needs`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from csms.connection import OcppConnection
from csms.events import ChargerReportReceived, EvChargingNeedsReported, ExternalLimitChanged
from csms.meter import parse_timestamp
from handlers._time import now


class V201Reports(OcppConnection):
    """Mixed into :class:`handlers.v201.ChargePoint201`."""

    async def _report(
        self,
        action: str,
        data: dict[str, Any],
        *,
        request_id: int | None = None,
        seq_no: int | None = None,
        tbc: bool = False,
        evse_id: int | None = None,
        generated_at: str | None = None,
    ) -> None:
        data.pop("custom_data", None)
        await self.central.record(
            ChargerReportReceived(
                charge_point_id=self.id,
                occurred_at=parse_timestamp(generated_at, "generatedAt") if generated_at else now(),
                action=action,
                request_id=request_id,
                seq_no=seq_no,
                tbc=tbc,
                evse_id=evse_id,
                data=data,
            )
        )

    @on(Action.notify_monitoring_report)
    async def on_notify_monitoring_report(
        self, request_id: int, seq_no: int, generated_at: str, tbc: bool = False, **data: Any
    ) -> call_result.NotifyMonitoringReport:
        await self._report("NotifyMonitoringReport", data, request_id=request_id, seq_no=seq_no,
                           tbc=tbc, generated_at=generated_at)  # fmt: skip
        return call_result.NotifyMonitoringReport()

    @on(Action.notify_display_messages)
    async def on_notify_display_messages(
        self, request_id: int, tbc: bool = False, **data: Any
    ) -> call_result.NotifyDisplayMessages:
        await self._report("NotifyDisplayMessages", data, request_id=request_id, tbc=tbc)
        return call_result.NotifyDisplayMessages()

    @on(Action.notify_customer_information)
    async def on_notify_customer_information(
        self, request_id: int, seq_no: int, generated_at: str, tbc: bool = False, **data: Any
    ) -> call_result.NotifyCustomerInformation:
        await self._report("NotifyCustomerInformation", data, request_id=request_id,
                           seq_no=seq_no, tbc=tbc, generated_at=generated_at)  # fmt: skip
        return call_result.NotifyCustomerInformation()

    @on(Action.report_charging_profiles)
    async def on_report_charging_profiles(
        self, request_id: int, evse_id: int, tbc: bool = False, **data: Any
    ) -> call_result.ReportChargingProfiles:
        await self._report("ReportChargingProfiles", data, request_id=request_id, tbc=tbc,
                           evse_id=evse_id)  # fmt: skip
        return call_result.ReportChargingProfiles()

    @on(Action.notify_ev_charging_schedule)
    async def on_notify_ev_charging_schedule(
        self, evse_id: int, **data: Any
    ) -> call_result.NotifyEVChargingSchedule:
        await self._report("NotifyEVChargingSchedule", data, evse_id=evse_id)
        return call_result.NotifyEVChargingSchedule(status="Accepted")

    @on(Action.publish_firmware_status_notification)
    async def on_publish_firmware_status_notification(
        self, request_id: int | None = None, **data: Any
    ) -> call_result.PublishFirmwareStatusNotification:
        await self._report("PublishFirmwareStatusNotification", data, request_id=request_id)
        return call_result.PublishFirmwareStatusNotification()

    @on(Action.notify_ev_charging_needs)
    async def on_notify_ev_charging_needs(
        self,
        charging_needs: dict[str, Any],
        evse_id: int,
        max_schedule_tuples: int | None = None,
        **_: Any,
    ) -> call_result.NotifyEVChargingNeeds:
        departure: datetime | None = None
        if charging_needs.get("departure_time"):
            departure = parse_timestamp(charging_needs["departure_time"], "departureTime")
        parameters = (
            charging_needs.get("ac_charging_parameters")
            or charging_needs.get("dc_charging_parameters")
            or {}
        )
        energy = parameters.get("energy_amount")
        await self.central.record(
            EvChargingNeedsReported(
                charge_point_id=self.id,
                occurred_at=now(),
                evse_id=evse_id,
                requested_energy_transfer=charging_needs["requested_energy_transfer"],
                departure_time=departure,
                energy_amount_wh=None if energy is None else float(energy),
                max_schedule_tuples=max_schedule_tuples,
                needs=charging_needs,
            )
        )
        # Processing, not Accepted: the planner acts on its next run; it does not
        # promise a schedule within this exchange (K15.FR.05 allows either).
        return call_result.NotifyEVChargingNeeds(status="Processing")

    @on(Action.notify_charging_limit)
    async def on_notify_charging_limit(
        self,
        charging_limit: dict[str, Any],
        charging_schedule: list[dict[str, Any]] | None = None,
        evse_id: int | None = None,
        **_: Any,
    ) -> call_result.NotifyChargingLimit:
        await self.central.record(
            ExternalLimitChanged(
                charge_point_id=self.id,
                occurred_at=now(),
                source=charging_limit["charging_limit_source"],
                evse_id=evse_id,
                grid_critical=charging_limit.get("is_grid_critical"),
                schedules=tuple(charging_schedule or ()),
            )
        )
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(
        self, charging_limit_source: str, evse_id: int | None = None, **_: Any
    ) -> call_result.ClearedChargingLimit:
        await self.central.record(
            ExternalLimitChanged(
                charge_point_id=self.id,
                occurred_at=now(),
                source=charging_limit_source,
                evse_id=evse_id,
                cleared=True,
            )
        )
        return call_result.ClearedChargingLimit()
