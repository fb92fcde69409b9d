"""Simulator test settings: the ``integration`` marker and a quiet CSMS fixture."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs the real CSMS (the `csms` fixture from tests/conftest.py)"
    )


@pytest.fixture
async def quiet_csms(start_csms: Any) -> Any:
    """The CSMS (tests/conftest.py) with a one-day heartbeat interval and the token TAG1.

    Chargers then only send a Heartbeat when a TriggerMessage asks for one.
    """
    app = await start_csms(heartbeat_interval=86_400)
    await app.add_token("TAG1")
    return app
