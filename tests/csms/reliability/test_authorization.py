"""Token decisions the spec asks for: a blocked group blocks its members; ConcurrentTx (15.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from csms.central import decide_authorization
from csms.events import AuthorizationStatus
from csms.storage.tokens import TokenRecord
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import raw_charger

T0 = "2026-01-01T00:00:00Z"


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def test_a_member_of_a_blocked_group_is_blocked() -> None:
    member = TokenRecord("M", "Accepted", None, "G", group_status="Blocked")
    decision = decide_authorization(member, datetime.now(UTC))
    assert decision.status is AuthorizationStatus.BLOCKED and decision.group_id == "G"
    fine = TokenRecord("M", "Accepted", None, "G", group_status="Accepted")
    assert decide_authorization(fine, datetime.now(UTC)).status is AuthorizationStatus.ACCEPTED


async def test_a_blocked_parent_blocks_its_members_on_the_wire(csms: RunningCsms) -> None:
    await csms.add_token("FLEET", "Blocked")
    await csms.add_token("CARD-7", "Accepted", group_id="FLEET")
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        answer = await charger.exchange(frame("a", "Authorize", {"idTag": "CARD-7"}))
    assert answer[2]["idTagInfo"]["status"] == "Blocked"


async def test_a_token_in_a_running_transaction_gets_concurrent_tx_elsewhere(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(concurrent_tx_window_hours=12.0)
    await csms.add_token("TAG")
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": T0}
    async with raw_charger(csms.ocpp_url, "CP1", "ocpp1.6") as one:
        first = await one.exchange(frame("s", "StartTransaction", start))
        assert first[2]["idTagInfo"]["status"] == "Accepted"
        again = await one.exchange(frame("s2", "StartTransaction", start))  # a resend
        assert again[2]["idTagInfo"]["status"] == "Accepted"
    async with raw_charger(csms.ocpp_url, "CP2", "ocpp1.6") as two:
        other = await two.exchange(frame("s", "StartTransaction", start))
    assert other[2]["idTagInfo"]["status"] == "ConcurrentTx"
