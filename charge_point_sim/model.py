"""Version-neutral state of a charger's connectors, sessions and queued messages.

These are plain data holders; the behaviour lives in :mod:`charge_point_sim.charger`
and the protocol wording in :mod:`charge_point_sim.v16` / :mod:`charge_point_sim.v201`.
Statuses and stop reasons use OCPP 1.6 names internally; the 2.0.1 charger
maps them when it builds its frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from charge_point_sim.ev import EVState

IN_SESSION = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})


@dataclass
class Session:
    """One charging session on one connector (1.6) / EVSE (2.0.1)."""

    local_id: int
    evse_id: int
    id_tag: str
    ev: EVState
    started: datetime
    meter_start_wh: float
    transaction_id: str | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    seq_no: int = 0
    power_w: float = 0.0
    stepped_at: datetime | None = None  # simulated time the EV model was last advanced to
    stop_reason: str | None = None
    rejected: bool = False
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when its charging profiles change: the charger applies the new limit at once
    # (a real one changes its pilot signal when it accepts a profile, not at its next tick).
    limit_changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def next_seq(self) -> int:
        """2.0.1 ``seqNo``: 0 for Started, then +1 per TransactionEvent."""
        seq = self.seq_no
        self.seq_no += 1
        return seq


@dataclass
class Reservation:
    """An active ReserveNow on a connector."""

    id: int
    id_tag: str
    expiry: datetime


@dataclass(frozen=True)
class PendingReset:
    """A Reset answered ``Scheduled``: it runs once its scope has no session left.

    ``evse_id`` None resets the whole charger (reconnect + BootNotification);
    an EVSE id resets just that EVSE (2.0.1 ``Reset.evseId``).
    """

    stop_reason: str
    boot_reason: str
    evse_id: int | None = None


@dataclass
class Connector:
    """One connector (1.6) or EVSE with a single connector (2.0.1)."""

    id: int
    energy_wh: float = 0.0
    status: str = "Available"
    error_code: str = "NoError"
    operative: bool = True
    pending_inoperative: bool = False
    faulted: bool = False
    fault_code: str = "NoError"
    stuck_meter: bool = False
    power_factor: float = 1.0
    power_drop_until: datetime | None = None
    temperature_c: float = 25.0
    temperature_drift_c: float = 0.0  # fault injection: added to every reading
    session: Session | None = None
    reservation: Reservation | None = None

    def idle_status(self) -> str:
        """Status when no session is running."""
        if self.faulted:
            return "Faulted"
        if not self.operative:
            return "Unavailable"
        if self.reservation is not None:
            return "Reserved"
        return "Available"


@dataclass(frozen=True)
class Sample:
    """One meter reading, rendered as MeterValues (1.6) or meterValue (2.0.1)."""

    timestamp: datetime
    context: str
    energy_wh: float
    power_w: float
    phases: int
    soc: float | None
    temperature_c: float


@dataclass
class QueuedTx:
    """A transaction-related message waiting to be delivered in order.

    ``build`` runs at send time (so a 1.6 StopTransaction can use the
    transactionId the CSMS assigned after the message was queued) and may
    return None to drop the message; ``offline`` records whether the charger
    was offline when the event happened (2.0.1 ``offline`` flag).
    """

    action: str
    build: Callable[[bool], Any]
    created: datetime
    offline: bool
    on_result: Callable[[Any], None] | None = None
