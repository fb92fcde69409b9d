"""Billing's event for the Kafka fan-out: a CDR was created (topic charging-sessions).

It is appended in the same transaction as the session's ``session_ended``,
right after it, so a consumer of ``charging-sessions`` gets the end of a
session and its priced record together, in order, on the charger's partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from csms.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrCreated(Event):
    """A finished session's charge detail record; money and energy as decimal strings."""

    type: ClassVar[str] = "cdr_created"
    cdr_id: int
    session_id: int
    transaction_id: str
    evse_id: int | None
    connector_id: int | None
    id_token: str | None
    tariff_id: int | None
    start_at: str
    end_at: str
    currency: str
    total_energy_wh: str
    charging_seconds: str
    parking_seconds: str
    total_net: str
    total_tax: str
    total_cost: str
    flags: tuple[str, ...]
    items: tuple[dict[str, Any], ...]
