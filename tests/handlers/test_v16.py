"""OCPP 1.6J handlers, driven by the ocpp library's own 1.6 charge point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ocpp.v16 import call

from tests.conftest import RunningCsms
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def energy(wh: float, moment: datetime, unit: str = "Wh") -> dict[str, object]:
    return {
        "timestamp": ts(moment),
        "sampledValue": [
            {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": unit},
            {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "10.5", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        ],
    }


async def test_full_session_lifecycle_is_stored(csms: RunningCsms) -> None:
    await csms.add_token("TAG-1", group_id="FLEET")
    t0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        boot = await cp.call(
            call.BootNotification(
                charge_point_vendor="Acme",
                charge_point_model="Wallbox",
                charge_point_serial_number="SN-1",
                firmware_version="1.2.3",
            )
        )
        assert boot.status == "Accepted" and boot.interval == 300
        await cp.call(
            call.StatusNotification(
                connector_id=1, error_code="NoError", status="Preparing", timestamp=ts(t0)
            )
        )
        auth = await cp.call(call.Authorize(id_tag="tag-1"))
        assert auth.id_tag_info == {"status": "Accepted", "parent_id_tag": "FLEET"}
        start = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=ts(t0)
            )
        )
        assert start.id_tag_info["status"] == "Accepted"
        tx = start.transaction_id
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx,
                meter_value=[energy(2500, t0 + timedelta(minutes=10))],
            )
        )
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx,
                meter_value=[energy(4, t0 + timedelta(minutes=20), "kWh")],
            )
        )
        stop = await cp.call(
            call.StopTransaction(
                meter_stop=4600,
                timestamp=ts(t0 + timedelta(minutes=30)),
                transaction_id=tx,
                id_tag="TAG-1",
                reason="EVDisconnected",
            )
        )
        assert stop.id_tag_info["status"] == "Accepted"
        await cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )

    charger = await csms.pool.fetchrow("SELECT * FROM chargers WHERE charge_point_id = 'CP16'")
    assert (charger["vendor"], charger["model"], charger["serial_number"]) == (
        "Acme",
        "Wallbox",
        "SN-1",
    )
    assert charger["protocol"] == "ocpp1.6" and charger["last_boot_status"] == "Accepted"

    session = await csms.pool.fetchrow("SELECT * FROM sessions WHERE charge_point_id = 'CP16'")
    assert session["transaction_id"] == str(tx)
    assert session["status"] == "ended" and session["stop_reason"] == "EVDisconnected"
    assert session["started_at"] == t0 and session["ended_at"] == t0 + timedelta(minutes=30)
    assert (session["meter_start_wh"], session["meter_stop_wh"]) == (1000, 4600)
    assert session["energy_wh"] == 3600
    assert session["meter_last_wh"] == 4000  # 4 kWh normalised to Wh
    assert session["id_token"] == "TAG-1" and session["auth_status"] == "Accepted"

    samples = await csms.pool.fetch(
        "SELECT measurand, value, unit, phase FROM meter_samples WHERE session_id = $1",
        session["id"],
    )
    assert len(samples) == 6
    assert ("Current.Import", 10.5, "A", "L1") in [tuple(s) for s in samples]

    connector = await csms.pool.fetchrow("SELECT * FROM connectors WHERE charge_point_id = 'CP16'")
    assert (connector["evse_id"], connector["connector_id"], connector["status"]) == (
        1,
        1,
        "Available",
    )

    await eventually(lambda: csms.pool.fetchval("SELECT NOT connected FROM chargers"))
    types = [
        r["type"]
        for r in await csms.pool.fetch(
            "SELECT type FROM events WHERE charge_point_id = 'CP16' ORDER BY id"
        )
    ]
    assert types == [
        "charger_connected",
        "charger_booted",
        "connector_status_changed",
        "authorization_requested",
        "session_started",
        "meter_sampled",
        "meter_sampled",
        "session_ended",
        "cdr_created",  # billing's CDR, in the session end's transaction
        "connector_status_changed",
        "charger_disconnected",
    ]
    started = await csms.pool.fetchval("SELECT payload FROM events WHERE type = 'session_started'")
    assert f'"transaction_id": "{tx}"' in started


async def test_repeated_start_transaction_gets_the_same_transaction_id(csms: RunningCsms) -> None:
    await csms.add_token("TAG-1")
    request = call.StartTransaction(
        connector_id=2, id_tag="TAG-1", meter_start=50, timestamp="2026-01-05T10:00:00Z"
    )
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        first = await cp.call(request)
        again = await cp.call(request)
        other = await cp.call(
            call.StartTransaction(
                connector_id=2, id_tag="TAG-1", meter_start=60, timestamp="2026-01-05T11:00:00Z"
            )
        )
    assert first.transaction_id == again.transaction_id != other.transaction_id
    assert await csms.pool.fetchval("SELECT count(*) FROM sessions") == 2


async def test_stop_for_an_unknown_transaction_is_answered_and_recorded(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        stop = await cp.call(
            call.StopTransaction(
                meter_stop=900, timestamp="2026-01-05T12:00:00Z", transaction_id=424242
            )
        )
    assert stop.id_tag_info is None
    session = await csms.pool.fetchrow("SELECT * FROM sessions WHERE transaction_id = '424242'")
    assert session["start_unknown"] and session["status"] == "ended"
    assert session["meter_stop_wh"] == 900 and session["stop_reason"] == "Local"


async def test_messages_queued_offline_keep_their_own_timestamps(csms: RunningCsms) -> None:
    """A charger that was offline delivers old messages late; their times are the charger's."""
    await csms.add_token("TAG-1")
    hours_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        # The charger reported Available just now ...
        await cp.call(
            call.StatusNotification(
                connector_id=1,
                error_code="NoError",
                status="Available",
                timestamp=ts(hours_ago + timedelta(hours=5)),
            )
        )
        # ... then delivers what it queued hours ago.
        await cp.call(
            call.StatusNotification(
                connector_id=1, error_code="NoError", status="Charging", timestamp=ts(hours_ago)
            )
        )
        start = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG-1", meter_start=0, timestamp=ts(hours_ago)
            )
        )
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=start.transaction_id,
                meter_value=[energy(800, hours_ago + timedelta(minutes=30))],
            )
        )
        await cp.call(
            call.StopTransaction(
                meter_stop=1500,
                timestamp=ts(hours_ago + timedelta(hours=1)),
                transaction_id=start.transaction_id,
            )
        )

    connector = await csms.pool.fetchrow("SELECT status, detail FROM connectors")
    assert (connector["status"], connector["detail"]) == (
        "Available",
        "Available",
    )  # older status ignored
    session = await csms.pool.fetchrow("SELECT * FROM sessions")
    assert session["started_at"] == hours_ago and session["ended_at"] == hours_ago + timedelta(
        hours=1
    )
    assert session["energy_wh"] == 1500
    sampled_at = await csms.pool.fetchval("SELECT min(sampled_at) FROM meter_samples")
    assert sampled_at == hours_ago + timedelta(minutes=30)
    occurred = await csms.pool.fetchval(
        "SELECT occurred_at FROM events WHERE type = 'session_started'"
    )
    assert occurred == hours_ago


async def test_authorization_answers_from_the_id_token_table(csms: RunningCsms) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=30)
    await csms.add_token("GOOD")
    await csms.add_token("STOLEN", status="Blocked")
    await csms.add_token("OLD", expires_at=past)
    await csms.add_token("LEASE", expires_at=future)
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        answers = {
            tag: (await cp.call(call.Authorize(id_tag=tag))).id_tag_info
            for tag in ["good", "STOLEN", "OLD", "LEASE", "NOBODY"]
        }
        start = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="STOLEN", meter_start=0, timestamp=ts(datetime.now(UTC))
            )
        )
    assert answers["good"] == {"status": "Accepted"}
    assert answers["STOLEN"]["status"] == "Blocked"
    assert answers["OLD"]["status"] == "Expired"
    assert answers["LEASE"]["status"] == "Accepted" and answers["LEASE"]["expiry_date"].startswith(
        future.strftime("%Y-%m-%dT%H:%M")
    )
    assert answers["NOBODY"] == {"status": "Invalid"}
    # A start with a blocked tag is still recorded (the charger decides to stop it).
    assert start.id_tag_info["status"] == "Blocked"
    assert await csms.pool.fetchval("SELECT auth_status FROM sessions") == "Blocked"


async def test_firmware_diagnostics_and_data_transfer_are_recorded(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "CP16") as cp:
        await cp.call(call.FirmwareStatusNotification(status="Downloading"))
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
        transfer = await cp.call(
            call.DataTransfer(vendor_id="com.acme", message_id="hello", data="{}")
        )
    assert transfer.status == "UnknownVendorId"
    assert await csms.pool.fetchval("SELECT firmware_status FROM chargers") == "Downloading"
    payloads = {
        r["type"]: r["payload"]
        for r in await csms.pool.fetch("SELECT type, payload::text FROM events")
    }
    assert '"status": "Uploaded"' in payloads["upload_status_changed"]
    assert '"vendor_id": "com.acme"' in payloads["data_transfer_received"]
