"""Charging sessions (OCPP transactions) and their meter readings.

All writes for one charger's sessions take a per-charger advisory lock
(``SESSION_LOCK_NAMESPACE``, :mod:`csms.storage.session_events`), so two
connections of the same identity (a reconnect racing the old socket) cannot
create a session twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from csms.events import MeterSample, Protocol, SessionEnded, SessionStarted, SessionUpdated
from csms.meter import energy_register
from csms.storage import Executor

SESSION_LOCK_NAMESPACE = 1


@dataclass(frozen=True, slots=True)
class SessionRef:
    id: int
    transaction_id: str


async def upsert(
    conn: Executor,
    event: SessionStarted | SessionUpdated | SessionEnded,
    protocol: Protocol,
    auth_status: str | None,
) -> SessionRef:
    """Apply a transaction event whose id the charger chose (2.0.1, and every 1.6 stop).

    Events may arrive out of order (a charger delivering its offline queue, or
    a lost Started): whichever arrives first creates the row, later ones fill
    in what they know, and an Ended session is never reopened.
    """
    return (await upsert_many(conn, [(event, protocol, auth_status)]))[0]


def readings_assignment(
    first_wh: str, first_at: str, last_wh: str, last_at: str, *, row: str = "", touch: bool = True
) -> str:
    """SQL ``SET`` list moving a session's start/latest readings, given parameter names.

    The start reading is the earliest register sample (unless an earlier one,
    e.g. 1.6 meterStart, is known); the latest is the newest by timestamp, so
    samples a charger queued while offline and delivers late change nothing
    they should not. Readings of NULL (an event without register samples) leave
    the row as it is. ``row`` prefixes the session row's columns where another
    row is in scope too (``s.`` in ``ON CONFLICT DO UPDATE``, beside EXCLUDED);
    ``touch`` sets ``updated_at`` too (a statement that sets it already: False).
    """
    touched = ",\n        updated_at = now()" if touch else ""
    return f"""
        meter_start_wh = CASE WHEN {row}meter_start_at IS NULL OR {first_at} < {row}meter_start_at
                              THEN COALESCE({first_wh}, {row}meter_start_wh)
                              ELSE {row}meter_start_wh END,
        meter_start_at = LEAST({row}meter_start_at, {first_at}),
        meter_last_wh = {latest_reading(last_wh, last_at, row=row)},
        meter_last_at = GREATEST({row}meter_last_at, {last_at}){touched}
    """


def latest_reading(last_wh: str, last_at: str, *, row: str = "") -> str:
    """SQL of the session's latest register reading once a reading (``last_wh`` taken at
    ``last_at``, NULL: none) is applied: the newer of it and the row's."""
    return f"""CASE WHEN {row}meter_last_at IS NULL OR {last_at} >= {row}meter_last_at
                             THEN COALESCE({last_wh}, {row}meter_last_wh)
                             ELSE {row}meter_last_wh END"""


# Per row: EXCLUDED.start_unknown is NOT "this is the start", EXCLUDED.status = 'ended'
# says "this is the end", EXCLUDED.started_at is the event's time. An end's stop reading
# is the charger's meterStop ($21, per row), else the latest register reading as this
# statement leaves it: the row is written once per event (a second UPDATE of it in the
# same transaction re-ran the foreign-key check of its charger).
def upsert_sql(where: str = "") -> str:
    """The upsert of :func:`upsert_many` without its RETURNING; ``where`` filters the rows
    (a statement that embeds it skips a resend's row)."""
    return f"""
    INSERT INTO sessions AS s (charge_point_id, protocol, transaction_id, evse_id,
                               connector_id, id_token, token_type, auth_status,
                               reservation_id, started_at, start_unknown, last_seq_no,
                               charging_state, status, ended_at, stop_reason, stop_id_token,
                               meter_start_wh, meter_start_at, meter_last_wh, meter_last_at,
                               meter_stop_wh)
    SELECT x.cp, x.protocol, x.tx, x.evse_id, x.connector_id, x.id_token, x.token_type,
           x.auth_status, x.reservation_id, x.at, NOT x.is_start, x.seq_no, x.charging_state,
           CASE WHEN x.is_end THEN 'ended' ELSE 'active' END,
           CASE WHEN x.is_end THEN x.at END, x.stop_reason,
           CASE WHEN x.is_end THEN x.id_token END,
           x.first_wh, x.first_at, x.last_wh, x.last_at,
           CASE WHEN x.is_end THEN COALESCE(x.stop_wh, x.last_wh) END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[],
                $7::text[], $8::text[], $9::int[], $10::timestamptz[], $11::int[],
                $12::bool[], $13::bool[], $14::text[], $15::text[], $16::int[],
                $17::float8[], $18::timestamptz[], $19::float8[], $20::timestamptz[],
                $21::float8[])
         AS x(cp, protocol, tx, evse_id, connector_id, id_token, token_type, auth_status,
              reservation_id, at, seq_no, is_start, is_end, charging_state, stop_reason, i,
              first_wh, first_at, last_wh, last_at, stop_wh)
    {where}
    ORDER BY x.i
    ON CONFLICT (charge_point_id, transaction_id) DO UPDATE SET
        evse_id = COALESCE(EXCLUDED.evse_id, s.evse_id),
        connector_id = COALESCE(EXCLUDED.connector_id, s.connector_id),
        id_token = COALESCE(s.id_token, EXCLUDED.id_token),
        token_type = COALESCE(s.token_type, EXCLUDED.token_type),
        auth_status = COALESCE(s.auth_status, EXCLUDED.auth_status),
        reservation_id = COALESCE(s.reservation_id, EXCLUDED.reservation_id),
        started_at = CASE WHEN NOT EXCLUDED.start_unknown THEN EXCLUDED.started_at
                          WHEN s.start_unknown THEN LEAST(s.started_at, EXCLUDED.started_at)
                          ELSE s.started_at END,
        start_unknown = s.start_unknown AND EXCLUDED.start_unknown,
        last_seq_no = GREATEST(s.last_seq_no, EXCLUDED.last_seq_no),
        charging_state = CASE
            WHEN EXCLUDED.charging_state IS NOT NULL
                 AND (EXCLUDED.last_seq_no IS NULL OR s.last_seq_no IS NULL
                      OR EXCLUDED.last_seq_no >= s.last_seq_no)
            THEN EXCLUDED.charging_state ELSE s.charging_state END,
        status = CASE WHEN EXCLUDED.status = 'ended' THEN 'ended' ELSE s.status END,
        ended_at = CASE WHEN EXCLUDED.status = 'ended' THEN EXCLUDED.ended_at
                        ELSE s.ended_at END,
        stop_reason = CASE WHEN EXCLUDED.status = 'ended' THEN EXCLUDED.stop_reason
                           ELSE s.stop_reason END,
        stop_id_token = CASE WHEN EXCLUDED.status = 'ended' THEN EXCLUDED.stop_id_token
                             ELSE s.stop_id_token END,
        meter_stop_wh = CASE
            WHEN EXCLUDED.status = 'ended' THEN COALESCE(
                (SELECT st.stop_wh FROM unnest($1::text[], $3::text[], $21::float8[])
                        AS st(cp, tx, stop_wh)
                 WHERE st.cp = EXCLUDED.charge_point_id AND st.tx = EXCLUDED.transaction_id),
                {latest_reading("EXCLUDED.meter_last_wh", "EXCLUDED.meter_last_at", row="s.")})
            ELSE s.meter_stop_wh END,
        -- the register readings the event carries (NULL: none): the row is written once
        -- per event, not again by a readings UPDATE
        {
        readings_assignment(
            "EXCLUDED.meter_start_wh",
            "EXCLUDED.meter_start_at",
            "EXCLUDED.meter_last_wh",
            "EXCLUDED.meter_last_at",
            row="s.",
            touch=False,
        )
    },
        updated_at = now()
    """


_UPSERT_MANY = upsert_sql() + "RETURNING id, transaction_id, charge_point_id"

SessionWrite = tuple[SessionStarted | SessionUpdated | SessionEnded, Protocol, str | None]


Readings = tuple[float | None, datetime | None, float | None, datetime | None]
"""(first Wh, first time, last Wh, last time) of an event's energy register, or Nones."""

_NO_READINGS: Readings = (None, None, None, None)


async def upsert_many(
    conn: Executor, writes: Sequence[SessionWrite], readings: Sequence[Readings] = ()
) -> list[SessionRef]:
    """:func:`upsert` for several (event, protocol, auth status) at once, in one statement.

    At most one event per session (a session row is changed once per statement);
    the references come back in the order of ``writes``. ``readings``, when given
    (one per write), move the session's start and latest register readings in the
    same statement, as :func:`readings_assignment` does.
    """
    columns = upsert_columns(writes, readings)
    rows = await conn.fetch(_UPSERT_MANY, *columns)
    by_key = {(r["charge_point_id"], r["transaction_id"]): r["id"] for r in rows}
    return [
        SessionRef(by_key[(e.charge_point_id, e.transaction_id)], str(e.transaction_id))
        for e, _, _ in writes
    ]


def register_readings(samples: Sequence[MeterSample]) -> Readings:
    """(first Wh, first time, last Wh, last time) of the samples' energy register."""
    register = energy_register(samples)
    if not register:
        return _NO_READINGS
    first, last = register[0], register[-1]
    return first.value, first.sampled_at, last.value, last.sampled_at


def upsert_columns(
    writes: Sequence[SessionWrite], readings: Sequence[Readings] = ()
) -> list[list[object]]:
    """The 21 array parameters of :func:`upsert_sql` for ``writes`` (and their readings)."""
    columns: list[list[object]] = [[] for _ in range(21)]
    if not readings:
        readings = [_NO_READINGS] * len(writes)
    for index, ((event, protocol, auth_status), moved) in enumerate(
        zip(writes, readings, strict=True)
    ):
        assert event.transaction_id is not None
        is_end = isinstance(event, SessionEnded)
        row = (
            event.charge_point_id,
            protocol.value,
            event.transaction_id,
            event.evse_id,
            event.connector_id,
            event.id_token,
            event.token_type,
            auth_status,
            event.reservation_id if isinstance(event, SessionStarted) else None,
            event.occurred_at,
            event.seq_no,
            isinstance(event, SessionStarted),
            is_end,
            getattr(event, "charging_state", None),
            event.stop_reason if isinstance(event, SessionEnded) else None,
            index,
            *moved,
            event.meter_stop_wh if isinstance(event, SessionEnded) else None,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def find(conn: Executor, charge_point_id: str, transaction_id: str) -> SessionRef | None:
    row = await conn.fetchrow(
        """
        SELECT id, transaction_id FROM sessions
        WHERE charge_point_id = $1 AND transaction_id = $2
        """,
        charge_point_id,
        transaction_id,
    )
    return None if row is None else SessionRef(row["id"], row["transaction_id"])


# What an event's ``context`` keeps of its session row: the fields the outbox relay's
# session summary reads (csms/outbox/envelope.py ``session_summary``), nothing more.
# The whole row (to_jsonb, 680 bytes) was a third of a 2.0.1 update's event in WAL;
# nulls and a false ``start_unknown`` are left out (the summary reads them as such).
SESSION_CONTEXT_FIELDS = (
    "transaction_id",
    "status",
    "protocol",
    "evse_id",
    "connector_id",
    "id_token",
    "token_type",
    "auth_status",
    "started_at",
    "ended_at",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "stop_reason",
)


def context_sql(row: str) -> str:
    """SQL building an event's session ``context`` (jsonb) from the sessions row ``row``."""
    pairs = ", ".join(f"'{name}', {row}.{name}" for name in SESSION_CONTEXT_FIELDS)
    return (
        f"jsonb_strip_nulls(jsonb_build_object({pairs}, "
        f"'start_unknown', NULLIF({row}.start_unknown, false)))"
    )
