"""A bus subscriber catching up a backlog lets the rest of the loop run (csms/bus.py).

``await subscription.get()`` on an event already buffered does not wait; a
consumer whose handler never awaits anything real would otherwise drain its
whole backlog in one step and hold the chargers' loop all that time.
"""

from __future__ import annotations

import asyncio
import json
import time

from tests.conftest import RunningCsms
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually

BACKLOG = 40


async def test_a_subscriber_draining_a_backlog_yields_to_the_loop(csms: RunningCsms) -> None:
    subscription = csms.app.bus.subscribe("slices-test")
    async with raw_charger(csms.ocpp_url, "SLICES-CP", "ocpp1.6") as charger:
        boot = {"chargePointVendor": "Acme", "chargePointModel": "S"}
        await charger.exchange(json.dumps([2, "b", "BootNotification", boot]))
        for n in range(BACKLOG):
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            if n % 2:
                status["status"] = "Preparing"
            await charger.exchange(json.dumps([2, f"s{n}", "StatusNotification", status]))

        async def backlog() -> bool:
            return subscription.pending >= BACKLOG

        await eventually(backlog)  # the bus has read them; this subscriber took none

    ticks = 0

    async def ticker() -> None:  # stands for every other task on the loop (the chargers)
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        ticks_seen: list[int] = []
        for _ in range(BACKLOG):
            await subscription.get()
            ticks_seen.append(ticks)
            time.sleep(0.001)  # noqa: ASYNC251 -- a handler's synchronous work, holding the loop
    finally:
        other.cancel()
        csms.app.bus.unsubscribe(subscription)
    # 40 ms of handling in slices of 2 ms: the other task ran in between, many times.
    assert ticks_seen[-1] > ticks_seen[0]
