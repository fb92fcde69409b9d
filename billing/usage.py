"""Read what a session used from Postgres into a :class:`~billing.pricing.SessionUsage`.

The readings are the session's start reading (1.6 meterStart or the earliest
register sample), every whole-meter energy register sample recorded for it,
and its stop reading at the end; states are 2.0.1 chargingState changes of
the transaction and 1.6 status changes of its connector; power is the
whole-meter Power.Active.Import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.activity import PowerSample, StateChange
from billing.energy import Reading
from billing.money import to_decimal
from billing.pricing import SessionUsage
from csms.meter import ENERGY_REGISTER
from csms.storage import Executor

POWER = "Power.Active.Import"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The session row fields a CDR copies."""

    id: int
    charge_point_id: str
    protocol: str
    transaction_id: str
    evse_id: int | None
    connector_id: int | None
    id_token: str | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    stop_reason: str | None
    meter_start_wh: float | None
    meter_start_at: datetime | None
    meter_stop_wh: float | None


async def find_session(conn: Executor, session_id: int) -> SessionRecord | None:
    row = await conn.fetchrow(
        """
        SELECT id, charge_point_id, protocol, transaction_id, evse_id, connector_id, id_token,
               status, started_at, ended_at, stop_reason, meter_start_wh, meter_start_at,
               meter_stop_wh
        FROM sessions WHERE id = $1
        """,
        session_id,
    )
    return None if row is None else SessionRecord(**dict(row))


# A session's whole-meter samples of one measurand, in time order. The WHERE and ORDER
# BY are shared with billing/cdr_inputs.py (the session end's single read).
SAMPLES_WHERE = """
    session_id = {session} AND measurand = {measurand} AND phase IS NULL
      AND (location IS NULL OR location = 'Outlet')
"""
SAMPLES_ORDER = "sampled_at, id"


async def _samples(conn: Executor, session_id: int, measurand: str) -> list[Any]:
    where = SAMPLES_WHERE.format(session="$1", measurand="$2")
    return list(
        await conn.fetch(
            f"SELECT sampled_at, value FROM meter_samples WHERE {where} ORDER BY {SAMPLES_ORDER}",
            session_id,
            measurand,
        )
    )


# The events that carry a state, in the session's window: the partial index
# events_charger_states (migration 0023) holds exactly these -- its predicate is
# the first two conditions after the window, written the same way. (A
# session_ended carries no state; periodic updates without one are not indexed.)
STATE = "COALESCE(payload->>'charging_state', payload->>'detail')"
STATES_WHERE = f"""
    charge_point_id = {{cp}} AND occurred_at >= {{started_at}} AND occurred_at <= {{until}}
      AND type IN ('session_updated', 'connector_status_changed')
      AND {STATE} IS NOT NULL
      AND ((type = 'session_updated' AND payload->>'transaction_id' = {{tx}})
        OR (type = 'connector_status_changed' AND {{protocol}}::text = 'ocpp1.6'
            AND evse_id IS NOT DISTINCT FROM {{evse_id}}))
"""
STATES_ORDER = "occurred_at, id"


async def _states(conn: Executor, session: SessionRecord, until: datetime) -> list[StateChange]:
    where = STATES_WHERE.format(cp="$1", tx="$2", started_at="$3", until="$4", protocol="$5",
                                evse_id="$6")  # fmt: skip
    rows = await conn.fetch(
        f"SELECT occurred_at, {STATE} AS state FROM events WHERE {where} ORDER BY {STATES_ORDER}",
        session.charge_point_id,
        session.transaction_id,
        session.started_at,
        until,
        session.protocol,
        session.evse_id,
    )
    return [StateChange(r["occurred_at"], r["state"]) for r in rows if r["state"]]


async def load_usage(
    conn: Executor, session: SessionRecord, now: datetime, max_power_w: Decimal | None
) -> SessionUsage:
    """What ``session`` used, up to its end (or ``now`` for a running session)."""
    ended_at = session.ended_at or now
    energy = await _samples(conn, session.id, ENERGY_REGISTER)
    power = await _samples(conn, session.id, POWER)
    states = await _states(conn, session, ended_at) if session.started_at else []
    return usage_of(
        session,
        now,
        max_power_w,
        [(r["sampled_at"], r["value"]) for r in energy],
        [(r["sampled_at"], r["value"]) for r in power],
        states,
    )


def usage_of(
    session: SessionRecord,
    now: datetime,
    max_power_w: Decimal | None,
    energy: Sequence[tuple[datetime, float]],
    power: Sequence[tuple[datetime, float]],
    states: Sequence[StateChange],
) -> SessionUsage:
    """The usage of ``session`` from its register and power samples and its states (pure)."""
    ended_at = session.ended_at or now
    started_at = session.started_at or session.meter_start_at or ended_at
    readings = [Reading(at, to_decimal(value)) for at, value in energy]
    if session.meter_start_wh is not None and session.meter_start_at is not None:
        readings.append(Reading(session.meter_start_at, to_decimal(session.meter_start_wh)))
    if session.ended_at is not None and session.meter_stop_wh is not None:
        # The stop reading is the session's last word: a sample stamped after the
        # end (a charger's clock racing its own StopTransaction) is not billed.
        stop = Reading(session.ended_at, to_decimal(session.meter_stop_wh))
        readings = [r for r in readings if r.at <= stop.at and r != stop] + [stop]
    return SessionUsage(
        started_at=started_at,
        ended_at=max(ended_at, started_at),
        readings=readings,
        states=states,
        power=[PowerSample(at, to_decimal(value)) for at, value in power],
        max_power_w=max_power_w,
    )
