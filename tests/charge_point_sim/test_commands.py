"""CSMS-initiated commands, round trip: the CSMS's ``router.call`` -> simulated charger.

This module: Reset, UnlockConnector, ChangeAvailability, TriggerMessage,
DataTransfer, UpdateFirmware, GetDiagnostics / GetLog. Reservations, the local
list, ClearCache, ClearChargingProfile and refused tokens are in
``test_commands_auth.py``.

Each test checks the answer *and* what the charger then does: its own state,
and the messages it sends back as the CSMS stored them (``connectors``,
``sessions``, ``events``, ``meter_samples``). Both protocol versions are
covered wherever the command exists in both.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from charge_point_sim.clock import iso
from charge_point_sim.commands import FIRMWARE_STEPS
from tests.charge_point_sim.support import (
    at_least,
    connector_status,
    ended_session,
    event_payloads,
    eventually,
    running,
    start_tx,
    statuses_of,
    stop_tx,
    token,
    until,
    wait_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
VERSIONS = pytest.mark.parametrize("v201", [False, True], ids=["v16", "v201"])


@pytest.fixture
async def csms(quiet_csms: Any) -> Any:
    """The CSMS with a one-day heartbeat interval and the token TAG1 (see conftest)."""
    return quiet_csms


# --------------------------------------------------------------------- Reset
@pytest.mark.parametrize(
    ("v201", "kind", "stop_reason"),
    [
        (False, "Soft", "SoftReset"),
        (False, "Hard", "HardReset"),
        (True, "Immediate", "ImmediateReset"),
    ],
    ids=["v16-soft", "v16-hard", "v201-immediate"],
)
async def test_reset_ends_sessions_and_boots_again(
    csms: Any, v201: bool, kind: str, stop_reason: str
) -> None:
    async with running(csms, v201) as (fleet, ch, cp_id):
        tx = await start_tx(csms, cp_id, v201)
        payload = call201.Reset(type=kind) if v201 else call16.Reset(type=kind)
        assert (await csms.router.call(cp_id, payload)).status == "Accepted"
        row = await ended_session(csms, cp_id, tx)
        assert row["stop_reason"] == stop_reason
        await until(lambda: fleet.stats.sent.get("BootNotification") == 2)
        await until(lambda: ch.online and ch.booted)
        boots = await event_payloads(csms, cp_id, "charger_booted")
        assert len(boots) == 2
        if v201:
            assert boots[-1]["reason"] == "RemoteReset"
        await wait_status(csms, cp_id, 1, "Available")
    assert fleet.summary().call_errors == {}


async def test_v201_reset_on_idle_is_scheduled_until_the_session_ends(csms: Any) -> None:
    async with running(csms, True) as (fleet, ch, cp_id):
        tx = await start_tx(csms, cp_id, True)
        res = await csms.router.call(cp_id, call201.Reset(type="OnIdle"))
        assert res.status == "Scheduled"
        await asyncio.sleep(0.2)
        assert ch.online and fleet.stats.sent["BootNotification"] == 1
        res = await csms.router.call(
            cp_id,
            call201.RequestStartTransaction(id_token=token("TAG1"), remote_start_id=90, evse_id=2),
        )
        assert res.status == "Rejected"  # no new session while the reset waits
        row = await stop_tx(csms, cp_id, True, tx)
        assert row["stop_reason"] == "Remote"
        await until(lambda: fleet.stats.sent.get("BootNotification") == 2)
        boots = await event_payloads(csms, cp_id, "charger_booted")
        assert boots[-1]["reason"] == "RemoteReset"
        assert ch.pending_reset is None


async def test_v201_reset_of_one_evse(csms: Any) -> None:
    async with running(csms, True) as (fleet, _ch, cp_id):
        tx = await start_tx(csms, cp_id, True, evse=1)
        res = await csms.router.call(cp_id, call201.Reset(type="Immediate", evse_id=1))
        assert res.status == "Accepted"
        assert (await ended_session(csms, cp_id, tx))["stop_reason"] == "ImmediateReset"

        async def back() -> bool:
            seen = await statuses_of(csms, cp_id, 1)
            return "Unavailable" in seen and seen[-1] == "Available"

        await eventually(back)
        assert fleet.stats.sent["BootNotification"] == 1  # the station did not reboot
        res = await csms.router.call(cp_id, call201.Reset(type="Immediate", evse_id=9))
        assert res.status == "Rejected"


# ----------------------------------------------------------- UnlockConnector
async def test_v16_unlock_connector_stops_the_session(csms: Any) -> None:
    async with running(csms, False) as (_fleet, _ch, cp_id):
        tx = await start_tx(csms, cp_id, False, evse=1)
        res = await csms.router.call(cp_id, call16.UnlockConnector(connector_id=1))
        assert res.status == "Unlocked"
        assert (await ended_session(csms, cp_id, tx))["stop_reason"] == "UnlockCommand"
        await wait_status(csms, cp_id, 1, "Available")
        res = await csms.router.call(cp_id, call16.UnlockConnector(connector_id=2))
        assert res.status == "Unlocked"
        res = await csms.router.call(cp_id, call16.UnlockConnector(connector_id=9))
        assert res.status == "NotSupported"


async def test_v201_unlock_connector_keeps_an_authorized_session(csms: Any) -> None:
    async with running(csms, True) as (_fleet, ch, cp_id):
        tx = await start_tx(csms, cp_id, True, evse=1)
        res = await csms.router.call(cp_id, call201.UnlockConnector(evse_id=1, connector_id=1))
        assert res.status == "OngoingAuthorizedTransaction"
        await asyncio.sleep(0.1)
        assert ch.connectors[1].session is not None
        res = await csms.router.call(cp_id, call201.UnlockConnector(evse_id=2, connector_id=1))
        assert res.status == "Unlocked"
        res = await csms.router.call(cp_id, call201.UnlockConnector(evse_id=9, connector_id=1))
        assert res.status == "UnknownConnector"
        row = await stop_tx(csms, cp_id, True, tx)
        assert row["stop_reason"] == "Remote"


# -------------------------------------------------------- ChangeAvailability
@VERSIONS
async def test_change_availability(csms: Any, v201: bool) -> None:
    def change(evse: int, operative: bool) -> Any:
        if v201:
            state = "Operative" if operative else "Inoperative"
            return call201.ChangeAvailability(operational_status=state, evse={"id": evse})
        return call16.ChangeAvailability(
            connector_id=evse, type="Operative" if operative else "Inoperative"
        )

    async with running(csms, v201) as (fleet, ch, cp_id):
        await wait_status(csms, cp_id, 2, "Available")
        assert (await csms.router.call(cp_id, change(2, False))).status == "Accepted"
        await wait_status(csms, cp_id, 2, "Unavailable")
        assert not ch.connectors[2].operative
        start: Any = (
            call201.RequestStartTransaction(id_token=token("TAG1"), remote_start_id=1, evse_id=2)
            if v201
            else call16.RemoteStartTransaction(id_tag="TAG1", connector_id=2)
        )
        assert (await csms.router.call(cp_id, start)).status == "Rejected"
        assert (await csms.router.call(cp_id, change(2, True))).status == "Accepted"
        await wait_status(csms, cp_id, 2, "Available")
        # With a session running, Inoperative waits for its end.
        tx = await start_tx(csms, cp_id, v201, evse=1)
        assert (await csms.router.call(cp_id, change(1, False))).status == "Scheduled"
        await asyncio.sleep(0.1)
        assert await connector_status(csms, cp_id, 1) == "Occupied"
        await stop_tx(csms, cp_id, v201, tx)
        await wait_status(csms, cp_id, 1, "Unavailable")
    assert fleet.summary().call_errors == {}


# ------------------------------------------------------------ TriggerMessage
@VERSIONS
async def test_trigger_message(csms: Any, v201: bool) -> None:
    def trigger(message: str, evse: int | None = None) -> Any:
        if v201:
            target = {"id": evse} if evse is not None else None
            return call201.TriggerMessage(requested_message=message, evse=target)
        return call16.TriggerMessage(requested_message=message, connector_id=evse)

    async def accepted(message: str, evse: int | None = None) -> None:
        assert (await csms.router.call(cp_id, trigger(message, evse))).status == "Accepted"

    async with running(csms, v201) as (fleet, _ch, cp_id):
        await wait_status(csms, cp_id, 2, "Available")
        assert "Heartbeat" not in fleet.stats.sent
        await accepted("Heartbeat")
        await until(lambda: fleet.stats.sent.get("Heartbeat") == 1)

        before_1 = len(await statuses_of(csms, cp_id, 1))
        before_2 = len(await statuses_of(csms, cp_id, 2))
        await accepted("StatusNotification", 1)

        async def one_more() -> bool:
            return len(await statuses_of(csms, cp_id, 1)) == before_1 + 1

        await eventually(one_more)
        assert len(await statuses_of(csms, cp_id, 2)) == before_2  # only the one asked for

        await accepted("MeterValues", 2)
        await eventually(
            lambda: csms.pool.fetchval(
                "SELECT count(*) FROM meter_samples WHERE charge_point_id = $1 "
                "AND evse_id = 2 AND context = 'Trigger' AND session_id IS NULL",
                cp_id,
            )
        )

        await accepted("FirmwareStatusNotification")
        firmware = await eventually(lambda: event_payloads(csms, cp_id, "firmware_status_changed"))
        assert [e["status"] for e in firmware] == ["Idle"]
        await accepted("LogStatusNotification" if v201 else "DiagnosticsStatusNotification")
        uploads = await eventually(lambda: event_payloads(csms, cp_id, "upload_status_changed"))
        assert [e["status"] for e in uploads] == ["Idle"]

        await accepted("BootNotification")
        boots = await eventually(lambda: at_least(event_payloads(csms, cp_id, "charger_booted"), 2))
        if v201:
            assert boots[-1]["reason"] == "Triggered"

        res = await csms.router.call(cp_id, trigger("StatusNotification", 9))
        assert res.status == "Rejected"
    assert fleet.summary().call_errors == {}


# -------------------------------------------------------------- DataTransfer
@VERSIONS
async def test_data_transfer(csms: Any, v201: bool) -> None:
    module: Any = call201 if v201 else call16
    data: Any = {"a": [1, 2]} if v201 else "hello"
    async with running(csms, v201) as (fleet, _ch, cp_id):
        res = await csms.router.call(
            cp_id, module.DataTransfer(vendor_id="csms-sim", message_id="echo", data=data)
        )
        assert (res.status, res.data) == ("Accepted", data)
        res = await csms.router.call(
            cp_id, module.DataTransfer(vendor_id="csms-sim", message_id="nope")
        )
        assert res.status == "UnknownMessageId"
        res = await csms.router.call(cp_id, module.DataTransfer(vendor_id="acme"))
        assert res.status == "UnknownVendorId"
        assert fleet.stats.received["DataTransfer"] == 3


# ------------------------------------------------- UpdateFirmware, logs/diags
@VERSIONS
async def test_update_firmware_reports_each_step(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (_fleet, ch, cp_id):
        when = iso(ch.clock.now())
        location = "https://firmware.example/sim-1.1.bin"
        if v201:
            payload: Any = call201.UpdateFirmware(
                request_id=7, firmware={"location": location, "retrieveDateTime": when}
            )
        else:
            payload = call16.UpdateFirmware(location=location, retrieve_date=when)
        res = await csms.router.call(cp_id, payload)
        if v201:
            assert res.status == "Accepted"
        events = await eventually(
            lambda: at_least(event_payloads(csms, cp_id, "firmware_status_changed"), 4)
        )
        assert [e["status"] for e in events] == list(FIRMWARE_STEPS)
        if v201:
            assert {e["request_id"] for e in events} == {7}
        stored = await csms.pool.fetchval(
            "SELECT firmware_status FROM chargers WHERE charge_point_id = $1", cp_id
        )
        assert stored == "Installed"
        await until(lambda: ch.firmware_status == "Idle")


@VERSIONS
async def test_get_diagnostics_or_log_reports_the_upload(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (_fleet, ch, cp_id):
        if v201:
            res = await csms.router.call(
                cp_id,
                call201.GetLog(
                    log={"remoteLocation": "https://logs.example/up"},
                    log_type="DiagnosticsLog",
                    request_id=3,
                ),
            )
            assert res.status == "Accepted" and res.filename.endswith(".log")
        else:
            res = await csms.router.call(
                cp_id, call16.GetDiagnostics(location="ftp://logs.example/up")
            )
            assert res.file_name.startswith("diagnostics-")
        events = await eventually(
            lambda: at_least(event_payloads(csms, cp_id, "upload_status_changed"), 2)
        )
        assert [e["status"] for e in events] == ["Uploading", "Uploaded"]
        assert {e["kind"] for e in events} == {"log" if v201 else "diagnostics"}
        if v201:
            assert {e["request_id"] for e in events} == {3}
        await until(lambda: ch.upload_status == "Idle")
