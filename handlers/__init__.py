"""OCPP message handlers: one module per protocol version.

Each handler turns a charger's message into internal events
(:mod:`csms.events`), hands them to :class:`csms.central.CentralSystem`, and
builds the answer. No other part of the CSMS reads OCPP payloads.
"""

from __future__ import annotations

from csms.connection import OcppConnection
from csms.events import Protocol
from handlers.v16 import ChargePoint16
from handlers.v201 import ChargePoint201

HANDLERS: dict[Protocol, type[OcppConnection]] = {
    Protocol.V201: ChargePoint201,
    Protocol.V16: ChargePoint16,
}

__all__ = ["HANDLERS", "ChargePoint16", "ChargePoint201"]
