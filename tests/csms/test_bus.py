"""Committed events reach in-process subscribers, in order; rolled-back ones never do."""

from __future__ import annotations

import asyncio
import json

from csms.bus import EventBus
from csms.events import ConnectorStatus, ConnectorStatusChanged, SessionEnded, SessionStarted
from handlers._time import now
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
    seen = []
    while len(seen) < 4:
        seen.append(await asyncio.wait_for(subscription.get(), 5))
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
    assert subscription.queue.empty()


def test_a_full_subscriber_loses_events_not_the_publisher() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=2)
    fast = bus.subscribe("fast")
    for connector in range(5):
        bus.publish(ConnectorStatusChanged(
            charge_point_id="CP", occurred_at=now(), evse_id=connector, connector_id=connector,
            status=ConnectorStatus.AVAILABLE))  # fmt: skip
    assert slow.queue.qsize() == 2 and slow.dropped == 3
    assert fast.queue.qsize() == 5 and fast.dropped == 0
