"""An operator-API client on a CSMS whose billing sends CostUpdated only when a test asks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from csms.storage import api_keys
from tests.api_clients import api_client
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api


@pytest.fixture
async def api(start_csms: StartCsms) -> AsyncIterator[Api]:
    csms = await start_csms(
        response_timeout=5.0,
        billing_cost_update_interval=0,  # the tests call send_cost_updates themselves
        billing_sweep_interval=0,
        smart_charging_settle=0.5,
        smart_charging_call_timeout=5.0,
        smart_charging_interval=5.0,
    )
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    _, operator_key = await api_keys.create(csms.pool, "ops-team", "operator")
    _, reader_key = await api_keys.create(csms.pool, "dashboard", "read-only")
    async with (
        api_client(base, operator_key) as op,
        api_client(base, reader_key) as ro,
        api_client(base) as anonymous,
    ):
        yield Api(csms, op, ro, anonymous)
