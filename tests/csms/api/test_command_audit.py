"""Every command is audited: intent before the call goes out, outcome whatever the charger
answers; a malformed answer is 502 with the raw answer kept (15.4)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.csms.api.conftest import Api
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually

DEEP = '{"a":' * 600 + "1" + "}" * 600
MALFORMED = [
    ("NUL in a string", '[3, "{id}", {{"status": "Accepted\\u0000"}}]'),
    ("NaN literal", '[3, "{id}", {{"status": NaN}}]'),
    ("600-deep", '[3, "{id}", {{"status": "Accepted", "x": ' + DEEP.replace("{", "{{").replace(
        "}", "}}") + "}}]"),
    ("not the schema", '[3, "{id}", {{"status": "Maybe"}}]'),
    ("CALLERROR with a NUL", '[4, "{id}", "GenericError", "no\\u0000", {{"x": 1e400}}]'),
]  # fmt: skip


async def _connected(api: Api, charge_point_id: str) -> None:
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT connected FROM chargers WHERE charge_point_id = $1", charge_point_id
        )
    )


@pytest.mark.parametrize(("name", "template"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_a_malformed_answer_is_502_and_audited_with_the_raw_answer(
    api: Api, name: str, template: str
) -> None:
    async with raw_charger(api.csms.ocpp_url, "EVIL", "ocpp1.6") as charger:
        await _connected(api, "EVIL")

        async def answer() -> str:
            call = json.loads(await charger.websocket.recv())
            raw = template.format(id=call[1])
            await charger.websocket.send(raw)
            return raw

        answering = asyncio.create_task(answer())
        response = await api.operator.post("/chargers/EVIL/commands/clear_cache", json={})
        raw = await answering
    assert response.status_code == 502, response.text
    row = await api.csms.pool.fetchrow(
        "SELECT * FROM command_audit WHERE id = $1", response.json()["audit_id"]
    )
    assert row is not None and row["outcome"] in {"invalid_answer", "call_error"}
    assert row["raw_answer"] == raw.replace("\x00", "\\u0000")


async def test_the_intent_is_audited_before_the_call_goes_out(api: Api) -> None:
    async with raw_charger(api.csms.ocpp_url, "MUTE", "ocpp1.6") as charger:
        await _connected(api, "MUTE")
        pending = asyncio.create_task(
            api.operator.post("/chargers/MUTE/commands/clear_cache", json={})
        )
        await charger.websocket.recv()  # the call is out: its intent is already stored
        row = await api.csms.pool.fetchrow("SELECT * FROM command_audit")
        assert row is not None and row["outcome"] == "pending" and row["command"] == "clear_cache"
        response = await pending
    assert response.status_code == 504
    assert await api.csms.pool.fetchval("SELECT outcome FROM command_audit") == "timeout"
