"""Everything a session's CDR is priced from, in one statement.

A CDR is made inside the transaction that ends the session, so every round trip
it takes is time the charger's StopTransaction / TransactionEvent(Ended) answer
waits for. Read one by one -- the session, whether it has a CDR, its scopes, the
tariff they choose, its register samples, its power samples, its states -- it was
seven round trips; this reads them all at once (also for the running cost that
2.0.1 chargers get every minute) (the same conditions, shared with
:mod:`billing.usage` and :mod:`billing.store`) and, when there is a CDR to make,
reserves its id, so the CDR and its ``cdr_created`` event are one statement too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing import store
from billing.activity import StateChange
from billing.usage import (
    POWER,
    SAMPLES_ORDER,
    SAMPLES_WHERE,
    STATE,
    STATES_ORDER,
    STATES_WHERE,
    SessionRecord,
)
from csms.meter import ENERGY_REGISTER
from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class CdrInputs:
    """A session without a CDR, and what pricing it needs."""

    cdr_id: int | None  # reserved from the cdrs sequence (for an ended session's CDR)
    session: SessionRecord
    scopes: store.SessionScopes
    chosen: store.ChosenTariff | None
    energy: list[tuple[datetime, float]]
    power: list[tuple[datetime, float]]
    states: list[StateChange]


def _samples(measurand: str) -> str:
    where = SAMPLES_WHERE.format(session="s.id", measurand=f"'{measurand}'")
    return f"""
        SELECT array_agg(sampled_at ORDER BY {SAMPLES_ORDER}) AS at,
               array_agg(value ORDER BY {SAMPLES_ORDER}) AS value
        FROM meter_samples WHERE s.priced AND {where}
    """


_STATES_WHERE = STATES_WHERE.format(
    cp="s.charge_point_id",
    tx="s.transaction_id",
    started_at="s.started_at",
    until="COALESCE(s.ended_at, $2)",
    protocol="s.protocol",
    evse_id="s.evse_id",
)
_READ = f"""
    WITH s AS (
        SELECT id, charge_point_id, protocol, transaction_id, evse_id, connector_id, id_token,
               status, started_at, ended_at, stop_reason, meter_start_wh, meter_start_at,
               meter_stop_wh,
               -- a CDR: an ended session without one; a running cost: any session
               NOT $3::bool OR (status = 'ended'
                   AND NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.session_id = ss.id)) AS priced
        FROM sessions ss WHERE ss.id = $1
    ), scopes AS MATERIALIZED (  -- the scope function runs once, not per use
        SELECT scope.site_id, scope.max_power_w,
               (SELECT group_id FROM id_tokens WHERE lower(id_token) = lower(s.id_token))
                   AS token_group
        FROM s, billing_charger_scope(s.charge_point_id) AS scope WHERE s.priced
    )
    SELECT s.*, scopes.*,
           CASE WHEN s.priced AND $3::bool
                THEN nextval(pg_get_serial_sequence('cdrs', 'id')) END AS cdr_id,
           chosen.scope AS tariff_scope, chosen.scope_id AS tariff_scope_id, chosen.tariff,
           energy.at AS energy_at, energy.value AS energy_wh,
           power.at AS power_at, power.value AS power_w,
           states.at AS states_at, states.state AS states
    FROM s
    LEFT JOIN scopes ON true
    LEFT JOIN LATERAL (
        SELECT a.scope, a.scope_id, t AS tariff
        {
    store.TARIFF_CHOICE.format(
        group="scopes.token_group", cp="s.charge_point_id", site="scopes.site_id"
    )
}
    ) chosen ON s.priced
    LEFT JOIN LATERAL ({_samples(ENERGY_REGISTER)}) energy ON true
    LEFT JOIN LATERAL ({_samples(POWER)}) power ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(occurred_at ORDER BY {STATES_ORDER}) AS at,
               array_agg({STATE} ORDER BY {STATES_ORDER}) AS state
        FROM events
        WHERE s.priced AND s.started_at IS NOT NULL AND {_STATES_WHERE}
    ) states ON true
"""


def _pairs(times: Any, values: Any) -> list[tuple[Any, Any]]:
    return list(zip(times or (), values or (), strict=True))


async def read_for_cdr(conn: Executor, session_id: int, now: datetime) -> CdrInputs | None:
    """What the CDR of ``session_id`` needs, its id reserved; None if it is unknown,
    running or has a CDR."""
    return await _read(conn, session_id, now, for_cdr=True)


async def read_running(conn: Executor, session_id: int, now: datetime) -> CdrInputs | None:
    """What pricing ``session_id`` up to ``now`` needs (the running cost); None if it is
    unknown."""
    return await _read(conn, session_id, now, for_cdr=False)


async def _read(
    conn: Executor, session_id: int, now: datetime, *, for_cdr: bool
) -> CdrInputs | None:
    row = await conn.fetchrow(_READ, session_id, now, for_cdr)
    if row is None or not row["priced"]:
        return None
    session = SessionRecord(**{name: row[name] for name in SessionRecord.__slots__})
    scopes = store.SessionScopes(
        session.charge_point_id, row["site_id"], row["token_group"], row["max_power_w"]
    )
    chosen = None
    if row["tariff"] is not None:
        tariff = store.tariff_from_row(row["tariff"])
        chosen = store.ChosenTariff(tariff, row["tariff_scope"], row["tariff_scope_id"])
    return CdrInputs(
        cdr_id=row["cdr_id"],
        session=session,
        scopes=scopes,
        chosen=chosen,
        energy=_pairs(row["energy_at"], row["energy_wh"]),
        power=_pairs(row["power_at"], row["power_w"]),
        states=[StateChange(at, s) for at, s in _pairs(row["states_at"], row["states"]) if s],
    )
