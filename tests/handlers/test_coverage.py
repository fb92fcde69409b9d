"""Every charger-initiated action of both versions has a handler: none is answered NotSupported."""

from __future__ import annotations

import pytest
from ocpp.routing import create_route_map

from csms.events import Protocol
from csms.ocpp_catalog import ALL_ACTIONS, CHARGER_INITIATED, CSMS_INITIATED
from handlers import HANDLERS


@pytest.mark.parametrize("protocol", list(Protocol))
def test_every_charger_initiated_action_is_handled(protocol: Protocol) -> None:
    handled = set(create_route_map(HANDLERS[protocol]))
    assert CHARGER_INITIATED[protocol] <= handled, CHARGER_INITIATED[protocol] - handled
    assert handled <= CHARGER_INITIATED[protocol]  # a CSMS-initiated action has no handler


@pytest.mark.parametrize("protocol", list(Protocol))
def test_directions_cover_every_action_of_the_library(protocol: Protocol) -> None:
    assert CHARGER_INITIATED[protocol] <= ALL_ACTIONS[protocol]
    assert CHARGER_INITIATED[protocol] | CSMS_INITIATED[protocol] == ALL_ACTIONS[protocol]
    assert CHARGER_INITIATED[protocol] & CSMS_INITIATED[protocol] == {"DataTransfer"}
