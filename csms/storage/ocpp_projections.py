"""Projections of the reports chargers send, written in the transaction that logs the event.

:meth:`csms.central.CentralSystem.record` calls :func:`project` for every
event it stores, so the device model, monitors, reports, charging needs and
external limits commit together with their entry in the event log, before
the charger gets its answer.
"""

from __future__ import annotations

from csms.events import (
    CertificateSigningRequested,
    ChargerEventsNotified,
    ChargerReportReceived,
    EvChargingNeedsReported,
    Event,
    ExternalLimitChanged,
    FirmwareStatusChanged,
    ReportReceived,
)
from csms.storage import (
    Executor,
    certificates,
    charger_reports,
    charging_needs,
    device_model,
    display_messages,
    firmware_campaigns,
)


async def project(conn: Executor, event: Event) -> None:
    if isinstance(event, ReportReceived):
        await device_model.record_report_part(
            conn,
            event.charge_point_id,
            event.request_id,
            event.seq_no,
            event.tbc,
            event.report_data,
            event.occurred_at,
        )
    elif isinstance(event, ChargerEventsNotified):
        await device_model.record_event_values(
            conn, event.charge_point_id, event.event_data, event.occurred_at
        )
    elif isinstance(event, ChargerReportReceived):
        await charger_reports.insert(conn, event)
        if event.action == "NotifyMonitoringReport":
            await device_model.record_monitoring_report(
                conn, event.charge_point_id, event.data.get("monitor") or (), event.occurred_at
            )
        elif event.action == "NotifyDisplayMessages":
            await display_messages.upsert(
                conn,
                event.charge_point_id,
                event.data.get("message_info") or (),
                "NotifyDisplayMessages",
                event.occurred_at,
            )
    elif isinstance(event, EvChargingNeedsReported):
        await charging_needs.record_needs(conn, event)
    elif isinstance(event, ExternalLimitChanged):
        await charging_needs.record_external_limit(conn, event)
    elif isinstance(event, CertificateSigningRequested):
        await certificates.record_issued(conn, event)
    elif isinstance(event, FirmwareStatusChanged):
        await firmware_campaigns.record_status(conn, event)
