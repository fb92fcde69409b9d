"""A running CSMS with its operator API, API keys, and simulated chargers of both versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from charge_point_sim import Fleet, FleetConfig
from csms.storage import api_keys
from tests.api_clients import api_client
from tests.conftest import RunningCsms, StartCsms
from tests.waiting import eventually

CHARGER = {"ocpp1.6": "SIM-0000", "ocpp2.0.1": "SIM-0001"}


@dataclass
class Api:
    csms: RunningCsms
    operator: httpx.AsyncClient  # sends an operator key
    reader: httpx.AsyncClient  # sends a read-only key
    anonymous: httpx.AsyncClient


@pytest.fixture
async def api(start_csms: StartCsms) -> AsyncIterator[Api]:
    csms = await start_csms(response_timeout=2.0)
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    _, operator_key = await api_keys.create(csms.pool, "ops-team", "operator")
    _, reader_key = await api_keys.create(csms.pool, "dashboard", "read-only")
    async with (
        api_client(base, operator_key) as op,
        api_client(base, reader_key) as ro,
        api_client(base) as anonymous,
    ):
        yield Api(csms, op, ro, anonymous)


@pytest.fixture
async def fleet(api: Api) -> AsyncIterator[Fleet]:
    """One 1.6J charger (SIM-0000) and one 2.0.1 charger (SIM-0001), idle, fast clock."""
    await api.csms.add_token("DRIVER-1")
    fleet = Fleet(
        FleetConfig(
            url=api.csms.ocpp_url, chargers=2, v201_share=0.5, connectors=2, speed=60.0,
            arrival_rate=0.0, meter_interval=30, id_tags=["DRIVER-1"], seed=7,
        )
    )  # fmt: skip
    await fleet.start()
    assert await fleet.wait_online()
    await eventually(
        lambda: api.csms.pool.fetchval("SELECT count(*) = 2 FROM chargers WHERE connected")
    )
    # The CSMS asks every booted charger what it supports (csms.interop): wait for those
    # answers, so a test counting what the chargers received counts only its own calls.
    await eventually(lambda: api.csms.pool.fetchval("SELECT count(*) = 2 FROM charger_rate_units"))
    yield fleet
    await fleet.stop()
