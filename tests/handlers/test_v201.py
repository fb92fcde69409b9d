"""OCPP 2.0.1 handlers, driven by the ocpp library's own 2.0.1 charge point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v201 import call

from tests.conftest import RunningCsms
from tests.ocpp_clients import charger_v201

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def register(kwh: float, moment: datetime, context: str = "Sample.Periodic") -> dict[str, Any]:
    """A meter value with the energy register in kWh (multiplier 3 on Wh) and power."""
    return {
        "timestamp": ts(moment),
        "sampled_value": [
            {
                "value": kwh,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unit_of_measure": {"unit": "Wh", "multiplier": 3},
            },
            {"value": 11, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}},
            {"value": 16, "measurand": "Current.Import", "phase": "L2"},
        ],
    }


def tx_event(event_type: str, seq_no: int, moment: datetime, **extra: Any) -> call.TransactionEvent:
    info = {"transaction_id": "TX-9f2"} | extra.pop("info", {})
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=ts(moment),
        trigger_reason=extra.pop("trigger_reason", "MeterValuePeriodic"),
        seq_no=seq_no,
        transaction_info=info,
        **extra,
    )


async def test_full_session_lifecycle_is_stored(csms: RunningCsms) -> None:
    await csms.add_token("CARD-7", group_id="STAFF")
    async with charger_v201(csms.ocpp_url, "CS201") as cs:
        boot = await cs.call(
            call.BootNotification(
                charging_station={
                    "model": "DC-150",
                    "vendor_name": "Volt",
                    "serial_number": "V-9",
                    "firmware_version": "4.0",
                    "modem": {"iccid": "8931", "imsi": "2620"},
                },
                reason="PowerUp",
            )
        )
        assert boot.status == "Accepted"
        await cs.call(
            call.StatusNotification(
                timestamp=ts(T0), connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        auth = await cs.call(call.Authorize(id_token={"id_token": "card-7", "type": "ISO14443"}))
        assert auth.id_token_info == {
            "status": "Accepted",
            "group_id_token": {"id_token": "STAFF", "type": "Central"},
        }
        started = await cs.call(
            tx_event(
                "Started",
                0,
                T0,
                trigger_reason="Authorized",
                info={"charging_state": "Charging"},
                evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "CARD-7", "type": "ISO14443"},
                meter_value=[register(12.0, T0, "Transaction.Begin")],
            )
        )
        assert started.id_token_info["status"] == "Accepted"
        updated = await cs.call(
            tx_event(
                "Updated",
                1,
                T0 + timedelta(minutes=15),
                meter_value=[register(14.75, T0 + timedelta(minutes=15))],
            )
        )
        assert updated.id_token_info is None
        await cs.call(
            tx_event(
                "Ended",
                2,
                T0 + timedelta(minutes=30),
                trigger_reason="EVCommunicationLost",
                info={"stopped_reason": "EVDisconnected", "charging_state": "Idle"},
                meter_value=[register(17.5, T0 + timedelta(minutes=30), "Transaction.End")],
            )
        )

    charger = await csms.pool.fetchrow("SELECT * FROM chargers")
    assert (charger["vendor"], charger["model"], charger["firmware_version"], charger["iccid"]) == (
        "Volt",
        "DC-150",
        "4.0",
        "8931",
    )
    assert charger["protocol"] == "ocpp2.0.1" and charger["last_boot_reason"] == "PowerUp"
    session = await csms.pool.fetchrow("SELECT * FROM sessions")
    assert session["transaction_id"] == "TX-9f2" and session["protocol"] == "ocpp2.0.1"
    assert (session["evse_id"], session["connector_id"]) == (1, 1)
    assert session["started_at"] == T0 and session["ended_at"] == T0 + timedelta(minutes=30)
    assert (session["meter_start_wh"], session["meter_stop_wh"]) == (12000, 17500)
    assert session["energy_wh"] == 5500
    assert session["stop_reason"] == "EVDisconnected" and session["last_seq_no"] == 2
    assert session["status"] == "ended" and not session["start_unknown"]
    units = {
        tuple(r)
        for r in await csms.pool.fetch(
            "SELECT measurand, value, unit FROM meter_samples WHERE session_id = $1", session["id"]
        )
    }
    assert ("Power.Active.Import", 11000.0, "W") in units
    assert ("Current.Import", 16.0, "A") in units
    assert await csms.pool.fetchval("SELECT status FROM connectors") == "Occupied"


async def test_transaction_events_out_of_order_converge(csms: RunningCsms) -> None:
    """Updated before Started (lost or reordered), and a late Updated after Ended."""
    await csms.add_token("CARD-7")
    async with charger_v201(csms.ocpp_url, "CS201") as cs:
        await cs.call(
            tx_event(
                "Updated",
                1,
                T0 + timedelta(minutes=5),
                meter_value=[register(1.5, T0 + timedelta(minutes=5))],
            )
        )
        assert await csms.pool.fetchval("SELECT start_unknown FROM sessions")
        await cs.call(
            tx_event(
                "Started",
                0,
                T0,
                evse={"id": 2},
                id_token={"id_token": "CARD-7", "type": "ISO14443"},
                meter_value=[register(1.0, T0)],
            )
        )
        await cs.call(
            tx_event(
                "Ended",
                3,
                T0 + timedelta(minutes=20),
                meter_value=[register(3.0, T0 + timedelta(minutes=20))],
            )
        )
        await cs.call(
            tx_event(
                "Updated",
                2,
                T0 + timedelta(minutes=10),
                info={"charging_state": "SuspendedEV"},
                meter_value=[register(2.0, T0 + timedelta(minutes=10))],
            )
        )
    session = await csms.pool.fetchrow("SELECT * FROM sessions")
    assert not session["start_unknown"] and session["started_at"] == T0
    assert session["status"] == "ended"  # the late update did not reopen it
    assert session["evse_id"] == 2 and session["id_token"] == "CARD-7"
    assert (session["meter_start_wh"], session["meter_stop_wh"], session["energy_wh"]) == (
        1000,
        3000,
        2000,
    )
    assert session["stop_reason"] == "Local"  # stoppedReason omitted means Local
    assert session["last_seq_no"] == 3
    # the readings go by the samples' time: the late update moved neither end
    assert (session["meter_start_at"], session["meter_last_wh"], session["meter_last_at"]) == (
        T0,
        3000,
        T0 + timedelta(minutes=20),
    )


async def test_offline_transaction_events_keep_charger_time(csms: RunningCsms) -> None:
    async with charger_v201(csms.ocpp_url, "CS201") as cs:
        await cs.call(tx_event("Started", 0, T0, evse={"id": 1, "connector_id": 1}, offline=True))
    row = await csms.pool.fetchrow(
        "SELECT occurred_at, recorded_at, payload::text FROM events WHERE type = 'session_started'"
    )
    assert row["occurred_at"] == T0 and row["recorded_at"] > T0
    assert '"offline": true' in row["payload"]


async def test_unknown_and_no_authorization_tokens(csms: RunningCsms) -> None:
    async with charger_v201(csms.ocpp_url, "CS201") as cs:
        unknown = await cs.call(call.Authorize(id_token={"id_token": "NOPE", "type": "ISO14443"}))
        free = await cs.call(call.Authorize(id_token={"id_token": "", "type": "NoAuthorization"}))
    assert unknown.id_token_info == {"status": "Invalid"}
    assert free.id_token_info == {"status": "Accepted"}


async def test_device_messages_are_recorded_as_events(csms: RunningCsms) -> None:
    async with charger_v201(csms.ocpp_url, "CS201") as cs:
        await cs.call(
            call.NotifyEvent(
                generated_at=ts(T0),
                seq_no=0,
                event_data=[
                    {
                        "event_id": 1,
                        "timestamp": ts(T0),
                        "trigger": "Alerting",
                        "actual_value": "true",
                        "event_notification_type": "HardWiredNotification",
                        "component": {"name": "EVSE", "evse": {"id": 1}},
                        "variable": {"name": "Problem"},
                    }
                ],
            )
        )
        await cs.call(
            call.SecurityEventNotification(type="TamperDetectionActivated", timestamp=ts(T0))
        )
        await cs.call(call.FirmwareStatusNotification(status="Installed", request_id=7))
        await cs.call(call.LogStatusNotification(status="Uploaded", request_id=8))
        await cs.call(
            call.NotifyReport(
                request_id=3,
                generated_at=ts(T0),
                seq_no=0,
                report_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variable_attribute": [{"value": "300"}],
                    }
                ],
            )
        )
        await cs.call(call.MeterValues(evse_id=0, meter_value=[register(99, T0)]))
        transfer = await cs.call(call.DataTransfer(vendor_id="com.volt", data={"x": 1}))
        await cs.call(
            call.ReservationStatusUpdate(reservation_id=12, reservation_update_status="Expired")
        )
    assert transfer.status == "UnknownVendorId"
    rows = {
        r["type"]: r
        for r in await csms.pool.fetch("SELECT type, occurred_at, payload::text FROM events")
    }
    assert {
        "charger_events_notified",
        "security_event_reported",
        "firmware_status_changed",
        "upload_status_changed",
        "report_received",
        "meter_sampled",
        "data_transfer_received",
        "reservation_status_changed",
    } <= rows.keys()
    assert '"trigger": "Alerting"' in rows["charger_events_notified"]["payload"]
    assert rows["security_event_reported"]["occurred_at"] == T0
    assert '"HeartbeatInterval"' in rows["report_received"]["payload"]
    assert '"reservation_id": 12' in rows["reservation_status_changed"]["payload"]
    assert await csms.pool.fetchval("SELECT firmware_status FROM chargers") == "Installed"
    assert (
        await csms.pool.fetchval("SELECT count(*) FROM meter_samples WHERE session_id IS NULL") == 3
    )
