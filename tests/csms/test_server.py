"""Connection handling: subprotocols, paths, one live socket per identity, shutdown."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.server import charge_point_id_from_path
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # newest both speak, whatever the client's order
        (["ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp1.5", "ocpp1.6"], "ocpp1.6"),
    ],
)
async def test_subprotocol_negotiation(csms: RunningCsms, offered: list[str], chosen: str) -> None:
    async with connect(f"{csms.ocpp_url}/CP1", subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == chosen
        await ws.send('[2, "1", "Heartbeat", {}]')
        assert (await ws.recv()).startswith('[3,"1"')
    assert await csms.pool.fetchval("SELECT protocol FROM chargers") == chosen


@pytest.mark.parametrize("offered", [[], ["ocpp1.5"], ["wamp"]])
async def test_charger_offering_no_supported_version_is_refused(
    csms: RunningCsms, offered: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{csms.ocpp_url}/CP1", subprotocols=offered or None):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 400
    assert "connection.refused_no_subprotocol" in capsys.readouterr().err
    assert await csms.pool.fetchval("SELECT count(*) FROM chargers") == 0


@pytest.mark.parametrize("path", ["/", "/ocpp", "/ocpp/", "/other/CP1", "/ocpp/a/b"])
async def test_wrong_path_is_refused(csms: RunningCsms, path: str) -> None:
    base = csms.ocpp_url.removesuffix("/ocpp")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{base}{path}", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 404


def test_charge_point_id_from_path() -> None:
    assert charge_point_id_from_path("/ocpp/CP%201?x=1", "/ocpp") == "CP 1"
    assert charge_point_id_from_path("/csms/ocpp/CP1", "/csms/ocpp/") == "CP1"
    assert charge_point_id_from_path("/ocpp/" + "x" * 49, "/ocpp") is None
    assert charge_point_id_from_path("/ocpp/%0A", "/ocpp") is None


async def test_path_prefix_is_configurable(start_csms: StartCsms) -> None:
    csms = await start_csms(ocpp_path_prefix="/steve/websocket/CentralSystemService")
    assert csms.app.ocpp_url.endswith("/steve/websocket/CentralSystemService")
    async with raw_charger(csms.app.ocpp_url.replace("localhost", "127.0.0.1"), "CP1") as cp:
        assert (await cp.exchange('[2, "1", "Heartbeat", {}]'))[0] == 3


async def test_reconnect_replaces_the_old_socket(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "TWIN", "ocpp1.6") as old:
        assert (await old.exchange('[2, "1", "Heartbeat", {}]'))[0] == 3
        async with raw_charger(csms.ocpp_url, "TWIN", "ocpp2.0.1") as new:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(old.websocket.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            assert (await new.exchange('[2, "2", "Heartbeat", {}]'))[0] == 3
            assert csms.router.protocol_of("TWIN").value == "ocpp2.0.1"
            # The old socket's end does not mark the charger offline: the new one is live.
            await asyncio.sleep(0.1)
            charger = await csms.pool.fetchrow("SELECT connected, protocol FROM chargers")
            assert (charger["connected"], charger["protocol"]) == (True, "ocpp2.0.1")
    await eventually(lambda: csms.pool.fetchval("SELECT NOT connected FROM chargers"))


async def test_graceful_shutdown_closes_chargers_with_going_away(start_csms: StartCsms) -> None:
    csms = await start_csms()
    async with raw_charger(csms.ocpp_url, "CP1", "ocpp1.6") as cp:
        assert (await cp.exchange('[2, "1", "Heartbeat", {}]'))[0] == 3
        seen_before = await eventually(
            lambda: csms.pool.fetchval("SELECT last_seen_at FROM chargers")
        )
        await csms.app.stop()
        with pytest.raises(ConnectionClosed) as closed:
            await cp.websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    restarted = await start_csms()
    charger = await restarted.pool.fetchrow("SELECT connected, last_seen_at FROM chargers")
    assert charger["connected"] is False
    assert charger["last_seen_at"] >= seen_before  # pending last-seen writes were flushed


async def test_last_seen_advances_in_batches(csms: RunningCsms) -> None:
    async with raw_charger(csms.ocpp_url, "CP1", "ocpp2.0.1") as cp:
        first = await eventually(lambda: csms.pool.fetchval("SELECT last_seen_at FROM chargers"))
        await asyncio.sleep(0.05)
        await cp.exchange('[2, "1", "Heartbeat", {}]')
        await eventually(
            lambda: csms.pool.fetchval("SELECT last_seen_at > $1 FROM chargers", first)
        )


async def test_an_answer_sent_just_before_closing_is_not_lost(csms: RunningCsms) -> None:
    """A charger answers Reset and closes while the CSMS is still answering its own CALL."""
    async with raw_charger(csms.ocpp_url, "CP-RESET") as charger:
        boot = {"chargePointVendor": "V", "chargePointModel": "M"}
        assert (await charger.exchange(json.dumps([2, "b", "BootNotification", boot])))[0] == 3
        reset = asyncio.create_task(csms.router.call("CP-RESET", call.Reset(type="Soft")))
        request = json.loads(await asyncio.wait_for(charger.websocket.recv(), 5))
        assert request[2] == "Reset"
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        await charger.send(json.dumps([2, "s", "StatusNotification", status]))
        await charger.send(json.dumps([3, request[1], {"status": "Accepted"}]))
        await charger.websocket.close()
    answer = await asyncio.wait_for(reset, 5)
    assert answer.status == "Accepted"
