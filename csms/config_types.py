"""The enumerated values of settings (:mod:`csms.config`), importable by the parser too."""

from __future__ import annotations

import enum


class UnknownChargerPolicy(enum.StrEnum):
    """What BootNotification answers to a charger that is not in the registry."""

    ACCEPT = "accept"  # register it and answer Accepted (development default)
    PENDING = "pending"  # register it and answer Pending until an operator accepts it
    REJECT = "reject"  # record the attempt and answer Rejected


class EventLoopChoice(enum.StrEnum):
    """The asyncio loop implementation of each CSMS process (csms/event_loop.py)."""

    AUTO = "auto"  # uvloop when installed, else the standard loop
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"
