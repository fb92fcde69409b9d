"""The database pools' connections are on /metrics: busy ones count while a query runs."""

from __future__ import annotations

import asyncio

from tests.conftest import RunningCsms
from tests.csms.monitoring.test_metrics import scrape, value

BUSY = {"pool": "chargers", "state": "busy"}


async def test_a_connection_held_by_a_query_is_busy_on_metrics(csms: RunningCsms) -> None:
    _, idle = await scrape(csms)
    assert value(idle, "csms_db_pool_connections", {"pool": "api", "state": "idle"}) >= 0
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with csms.app.pool.acquire():
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        _, busy = await scrape(csms)
    finally:
        release.set()
        await holder
    assert value(busy, "csms_db_pool_connections", BUSY) >= 1  # ours, held during the scrape
