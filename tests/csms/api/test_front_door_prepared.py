"""The front door's route table is built at start-up, not in the first request's loop turn."""

from __future__ import annotations

from typing import Any

from csms.api.frontdoor import FrontDoor
from tests.conftest import RunningCsms


async def test_the_route_table_is_ready_before_the_first_request(csms: RunningCsms) -> None:
    api = csms.app._api
    assert api is not None
    layer: Any = api._app.middleware_stack  # built at start, not by the first request
    while layer is not None and not isinstance(layer, FrontDoor):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, FrontDoor)
    assert layer._keyed  # the routes that need an API key are known already
