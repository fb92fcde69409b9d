"""CSMS-initiated calls through the command router."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from csms.connection import CallErrorReceived
from csms.router import ChargerNotConnected, WrongProtocolVersion
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16, charger_v201, raw_charger
from tests.waiting import eventually


class Charger16(ChargePoint16):  # type: ignore[misc]
    @on("GetConfiguration")
    async def on_get_configuration(
        self, key: list[str] | None = None, **_: Any
    ) -> result16.GetConfiguration:
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            unknown_key=[k for k in key or [] if k != "HeartbeatInterval"],
        )


class Charger201(ChargePoint201):  # type: ignore[misc]
    @on("Reset")
    async def on_reset(self, type: str, **_: Any) -> result201.Reset:
        return result201.Reset(status="Scheduled" if type == "OnIdle" else "Accepted")


async def connected(csms: RunningCsms, charge_point_id: str) -> None:
    await eventually(
        lambda: csms.pool.fetchval(
            "SELECT connected FROM chargers WHERE charge_point_id = $1", charge_point_id
        )
    )


async def test_call_reaches_a_16_charger_and_returns_its_answer(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "CP16", Charger16):
        await connected(csms, "CP16")
        answer = await csms.router.call(
            "CP16", call16.GetConfiguration(key=["HeartbeatInterval", "Nope"])
        )
    assert answer.configuration_key == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    ]
    assert answer.unknown_key == ["Nope"]


async def test_call_reaches_a_201_charger(csms: RunningCsms) -> None:
    async with charger_v201(csms.ocpp_url, "CS201", Charger201):
        await connected(csms, "CS201")
        assert (await csms.router.call("CS201", call201.Reset(type="OnIdle"))).status == "Scheduled"


async def test_charger_callerror_is_raised_with_its_code(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "CP16"):  # handles no CSMS-initiated action
        await connected(csms, "CP16")
        with pytest.raises(CallErrorReceived) as error:
            await csms.router.call("CP16", call16.Reset(type="Soft"))
    assert error.value.code in {"NotImplemented", "NotSupported"}


async def test_offline_charger_and_wrong_version(csms: RunningCsms) -> None:
    with pytest.raises(ChargerNotConnected):
        await csms.router.call("NOBODY", call16.Reset(type="Soft"))
    async with charger_v201(csms.ocpp_url, "CS201", Charger201):
        await connected(csms, "CS201")
        with pytest.raises(WrongProtocolVersion):
            await csms.router.call("CS201", call16.Reset(type="Soft"))


async def test_silent_charger_times_out_and_a_late_answer_is_dropped(start_csms: StartCsms) -> None:
    csms = await start_csms(response_timeout=0.3)
    async with raw_charger(csms.ocpp_url, "MUTE", "ocpp1.6") as charger:
        await connected(csms, "MUTE")
        with pytest.raises(TimeoutError):
            await csms.router.call("MUTE", call16.ClearCache())
        request = await asyncio.wait_for(charger.websocket.recv(), 1)
        late_id = request.split('"')[1]
        await charger.send(f'[3, "{late_id}", {{"status": "Accepted"}}]')  # too late: dropped
        assert (await charger.exchange('[2, "h", "Heartbeat", {}]'))[0] == 3


async def test_pending_call_fails_when_the_charger_disconnects(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "GONE", "ocpp1.6") as charger:
        await connected(csms, "GONE")
        pending = asyncio.create_task(csms.router.call("GONE", call16.ClearCache()))
        await asyncio.wait_for(charger.websocket.recv(), 1)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(pending, 5)
