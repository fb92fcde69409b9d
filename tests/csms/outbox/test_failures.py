"""Failure behaviour: Kafka away mid-stream, and the CSMS killed mid-relay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import asyncpg
import pytest

from csms.config import Settings
from csms.outbox import relay as relay_module
from csms.outbox.admin import init_topics
from tests.conftest import StartCsms
from tests.csms.outbox.conftest import TansuProcess, read_topics, wait_published
from tests.csms.outbox.frames import call, status
from tests.csms.outbox.test_relay import dedupe, delivered_order, expected_order
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


async def chatter(url: str, charger_id: str, v201: bool, stop: asyncio.Event) -> int:
    """Send status notifications back to back until ``stop``; every one must be answered."""
    sent = 0
    async with raw_charger(url, charger_id, "ocpp2.0.1" if v201 else "ocpp1.6") as charger:
        while not stop.is_set():
            state = "Available" if sent % 2 else "Unavailable"
            await call(charger, *status(v201, 1 + sent % 2, state, sent))
            sent += 1
    return sent


async def test_kafka_outage_mid_stream_then_every_event_once_in_order(
    start_csms: StartCsms,
    kafka: TansuProcess,
    kafka_proxy: TansuProcess,
    topics: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay_module, "REQUEST_TIMEOUT_MS", 2000)
    monkeypatch.setattr(relay_module, "MAX_BACKOFF_S", 0.5)
    kafka_proxy.start()
    csms = await start_csms(kafka_bootstrap_servers=kafka_proxy.bootstrap, outbox_batch_size=50)
    stop = asyncio.Event()
    chargers = [
        asyncio.create_task(chatter(csms.ocpp_url, f"CP-{i}", i % 2 == 1, stop)) for i in range(4)
    ]
    unpublished = "SELECT count(*) FROM events WHERE published_at IS NULL"
    published = "SELECT count(*) FROM events WHERE published_at IS NOT NULL"
    try:
        await asyncio.sleep(1.0)
        assert await csms.pool.fetchval(published) > 0  # flowing before the outage
        kafka_proxy.kill()  # Kafka gone mid-stream: requests in flight are cut
        answered_before = await csms.pool.fetchval("SELECT count(*) FROM events")
        await asyncio.sleep(3.0)
        # chargers were still answered, and their events piled up in the outbox
        assert await csms.pool.fetchval("SELECT count(*) FROM events") > answered_before + 50
        assert await csms.pool.fetchval(unpublished) > 50
        assert csms.app.outbox is not None
        lag = await csms.app.outbox.lag()
        assert lag.unpublished > 50 and lag.oldest_age_s is not None and lag.oldest_age_s > 1
        kafka_proxy.start()
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        sent = await asyncio.gather(*chargers)
    await wait_published(csms.pool, within=30)
    events = await csms.pool.fetchval("SELECT count(*) FROM events")
    assert sum(sent) + 4 <= events  # every status notification (plus connects) was recorded
    received = await read_topics(kafka.bootstrap, events, within=20)
    unique = dedupe(received)
    assert len(unique) == events  # none lost, none twice after dedup
    assert delivered_order(unique) == await expected_order(csms.pool)
    assert csms.app.outbox.relay is not None
    assert csms.app.outbox.relay.stats.failed_batches >= 1
    print(f"outage: {events} events, {len(received)} records ({len(received) - events} re-sent)")


async def _start_csms_process(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "--host", "127.0.0.1", "--port", "0", "--no-migrate",
        "--log-format", "json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    ready = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    assert ready.startswith("CSMS ready: chargers connect to ws://127.0.0.1:"), ready
    return process, ready.split("connect to ")[1].split("/<charge_point_id>")[0]


async def test_csms_killed_mid_relay_loses_nothing(
    database_dsn: str, kafka: TansuProcess, kafka_proxy: TansuProcess
) -> None:
    await init_topics(Settings(kafka_bootstrap_servers=kafka.bootstrap), 3, 1)
    env = {
        **os.environ,
        "DATABASE_URL": database_dsn,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_proxy.bootstrap,  # not started yet: Kafka is down
        "CSMS_OUTBOX_BATCH_SIZE": "20",
        "CSMS_API_PORT": "0",
    }
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=2)
    assert pool is not None
    processes: list[asyncio.subprocess.Process] = []
    try:
        process, url = await _start_csms_process(env)
        processes.append(process)
        stop = asyncio.Event()
        chargers = [asyncio.create_task(chatter(url, f"K-{i}", i == 1, stop)) for i in range(3)]
        # A backlog builds while Kafka is down: large enough that a relay restarted
        # under the kill is still part-way through it (waited for, not slept: a
        # loaded CI machine stored too few events in a fixed 2 s).
        await eventually(
            lambda: pool.fetchval("SELECT count(*) > 200 FROM events WHERE published_at IS NULL"),
            within=60.0,
        )
        stop.set()
        await asyncio.gather(*chargers)
        kafka_proxy.start()
        published: Any = 0
        for _ in range(2000):  # kill as soon as the relay is part-way through
            published = await pool.fetchval(
                "SELECT count(*) FROM events WHERE published_at IS NOT NULL"
            )
            if published:
                break
            await asyncio.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        left = await pool.fetchval("SELECT count(*) FROM events WHERE published_at IS NULL")
        assert published > 0 and left > 0, (published, left)  # really killed mid-relay

        process, _ = await _start_csms_process(env)
        processes.append(process)
        await wait_published(pool, within=30)
        events = await pool.fetchval("SELECT count(*) FROM events")
        received = await read_topics(kafka.bootstrap, events, within=20)
        unique = dedupe(received)
        assert len(unique) == events
        assert delivered_order(unique) == await expected_order(pool)
        print(f"killed at {published}/{events} marked; {len(received) - events} re-sent")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await process.wait()
        await pool.close()
