"""An operator-API client on a CSMS whose load manager reacts at test speed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.storage import api_keys
from tests.api_clients import api_client
from tests.conftest import StartCsms
from tests.csms.api.conftest import Api

# Settle 0.5 s: longer than a simulated charger's tick and sample interval (1/3 s at
# the tests' speeds), so an EV has followed and reported a decrease before an increase.
TEST_SPEED_SETTINGS: dict[str, Any] = {
    "response_timeout": 2.0,
    "smart_charging_settle": 0.5,
    "smart_charging_call_timeout": 2.0,
    "smart_charging_interval": 5.0,
}


@contextlib.asynccontextmanager
async def open_api(start_csms: StartCsms, **settings: Any) -> AsyncIterator[Api]:
    """A CSMS at test speed (plus ``settings``) and API clients with three roles."""
    csms = await start_csms(**{**TEST_SPEED_SETTINGS, **settings})
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
async def api(start_csms: StartCsms) -> AsyncIterator[Api]:
    async with open_api(start_csms) as client:
        yield client
