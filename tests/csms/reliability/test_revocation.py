"""A registration change or a token block applies to live connections at once (15.4)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import RunningCsms
from tests.ocpp_clients import RawCharger, raw_charger
from tests.waiting import eventually

T0 = "2026-01-01T00:00:00Z"


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


async def test_a_charger_set_to_rejected_is_refused_on_its_open_socket(
    csms: RunningCsms,
) -> None:
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        assert (await charger.exchange(frame("h", "Heartbeat", {})))[0] == 3
        await csms.pool.execute(
            "UPDATE chargers SET registration = 'Rejected' WHERE charge_point_id = 'CP'"
        )

        async def refused() -> bool:
            answer = await charger.exchange(frame("h2", "Heartbeat", {}))
            return bool(answer[0] == 4 and answer[2] == "SecurityError")

        await eventually(refused)


async def _next_call(charger: RawCharger) -> list[Any]:
    while True:
        message = json.loads(await asyncio.wait_for(charger.websocket.recv(), 10))
        if message[0] == 2:
            return list(message)


@pytest.mark.parametrize("blocked", ["TAG", "FLEET"], ids=["token", "its group"])
async def test_blocking_a_token_stops_its_running_session(csms: RunningCsms, blocked: str) -> None:
    await csms.add_token("FLEET")
    await csms.add_token("TAG", group_id="FLEET")
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        start = await charger.exchange(frame("s", "StartTransaction", {
            "connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": T0}))  # fmt: skip
        tx = start[2]["transactionId"]
        await csms.pool.execute(
            "UPDATE id_tokens SET status = 'Blocked' WHERE id_token = $1", blocked
        )
        stop = await _next_call(charger)
        assert stop[2:] == ["RemoteStopTransaction", {"transactionId": tx}]
        await charger.send(json.dumps([3, stop[1], {"status": "Accepted"}]))
