"""Committed events reach in-process subscribers, in order; rolled-back ones never do.

Cluster-wide delivery (several nodes, slow subscribers) is tested in tests/csms/cluster.
"""

from __future__ import annotations

import asyncio
import json

from csms.events import Event, SessionEnded, SessionStarted
from tests.conftest import RunningCsms
from tests.ocpp_clients import raw_charger


async def test_subscriber_gets_each_committed_event_in_order(csms: RunningCsms) -> None:
    subscription = csms.app.bus.subscribe("test")
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "CP", "ocpp1.6") as charger:
        start = await charger.exchange(
            json.dumps(
                [
                    2,
                    "s",
                    "StartTransaction",
                    {
                        "connectorId": 1,
                        "idTag": "TAG",
                        "meterStart": 0,
                        "timestamp": "2026-01-01T00:00:00Z",
                    },
                ]
            )
        )
        bad = await charger.exchange(
            json.dumps(
                [
                    2,
                    "e",
                    "StartTransaction",
                    {  # a connector id no int4 column holds: the insert fails, rolls back
                        "connectorId": 2**40,
                        "idTag": "TAG",
                        "meterStart": 0,
                        "timestamp": "2026-01-01T00:30:00Z",
                    },
                ]
            )
        )
        assert bad[0] == 4  # rolled back: must not be published
        await charger.exchange(
            json.dumps(
                [
                    2,
                    "e2",
                    "StopTransaction",
                    {
                        "meterStop": 10,
                        "timestamp": "2026-01-01T01:00:00Z",
                        "transactionId": start[2]["transactionId"],
                    },
                ]
            )
        )
    seen: list[Event] = []
    while len(seen) < 4:
        event = await asyncio.wait_for(subscription.get(), 5)
        if event.type != "cdr_created":  # billing's own event, also on the bus
            seen.append(event)
    assert [e.type for e in seen] == [
        "charger_connected",
        "session_started",
        "session_ended",
        "charger_disconnected",
    ]
    started = seen[1]
    assert isinstance(started, SessionStarted)
    assert started.transaction_id == str(start[2]["transactionId"])  # the id the CSMS assigned
    assert isinstance(seen[2], SessionEnded) and seen[2].meter_stop_wh == 10
    assert subscription.empty()
