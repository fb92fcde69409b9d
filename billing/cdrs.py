"""Charge detail records: priced at session end, stored immutable, read and exported.

Fields follow OCPI 2.2.1 CDRs where they fit (start/end, location = charger /
EVSE / connector, token, tariff, total energy, charging and parking time,
itemised cost, currency) plus billing's flags for meter anomalies.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.cdr_inputs import CdrInputs, read_for_cdr
from billing.events import CdrCreated
from billing.money import decimal_text, to_decimal
from billing.pricing import LineItem, PricedSession, price_session
from billing.tariff import Tariff
from billing.usage import usage_of
from csms.central import SessionCost
from csms.storage import Executor
from csms.storage.where import Where

NO_TARIFF = "no_tariff"  # flag: no assignment matched; the session is recorded at zero


def _seconds(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1)) / 1_000_000


def _quantity_text(value: Decimal) -> str:
    """Energy or time without trailing zeros ("2500", not "2500.000"); money keeps them."""
    return decimal_text(value.normalize())


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else _quantity_text(value)


def item_json(item: LineItem) -> dict[str, Any]:
    return {
        "kind": item.kind.value,
        "description": item.description,
        "quantity": decimal_text(item.quantity),
        "unit": item.unit,
        "unit_price": decimal_text(item.unit_price),
        "amount": decimal_text(item.amount),
    }


def priced_json(priced: PricedSession) -> dict[str, Any]:
    """A priced session as JSON-ready values (Decimals as strings: never floats)."""
    return {
        "currency": priced.currency,
        "total_energy_wh": _quantity_text(priced.energy_wh),
        "energy_by_period": {k: _quantity_text(v) for k, v in priced.energy_wh_by_period.items()},
        "meter_start_wh": _text_or_none(priced.meter_start_wh),
        "meter_stop_wh": _text_or_none(priced.meter_stop_wh),
        "charging_seconds": _quantity_text(_seconds(priced.charging_time)),
        "parking_seconds": _quantity_text(_seconds(priced.parking_time)),
        "items": [item_json(i) for i in priced.items],
        "total_net": decimal_text(priced.net),
        "total_tax": decimal_text(priced.tax),
        "total_cost": decimal_text(priced.total),
        "flags": sorted(f.value for f in priced.flags),
    }


def price_inputs(
    inputs: CdrInputs, now: datetime, default_currency: str, max_power_w: Decimal | None
) -> PricedSession:
    """Price a session from what :mod:`billing.cdr_inputs` read (pure).

    ``max_power_w`` is used where the charger's own maximum is not known.
    """
    chosen = inputs.chosen
    tariff = chosen.stored.tariff if chosen else Tariff(currency=default_currency)
    if inputs.scopes.max_power_w is not None:
        max_power_w = to_decimal(inputs.scopes.max_power_w)
    usage = usage_of(inputs.session, now, max_power_w, inputs.energy, inputs.power, inputs.states)
    return price_session(tariff, usage)


_COLUMNS = (
    "id, session_id, charge_point_id, evse_id, connector_id, transaction_id, protocol,"
    " id_token, token_group, site_id, tariff_id, tariff_scope, start_at, end_at, currency,"
    " meter_start_wh, meter_stop_wh, total_energy_wh, energy_by_period, charging_seconds,"
    " parking_seconds, items, total_net, total_tax, total_cost, flags, stop_reason"
)
# The CDR and its cdr_created event in one statement (one round trip): the event is
# written only if the CDR was (a repeated end finds the CDR standing).
_STORE = f"""
    WITH cdr AS (
        INSERT INTO cdrs ({_COLUMNS})
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                $18, $19::jsonb, $20, $21, $22::jsonb, $23, $24, $25, $26, $27)
        ON CONFLICT (session_id) DO NOTHING
        RETURNING id
    )
    INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id, occurred_at,
                        payload)
    SELECT $28, $29, $3, $4, $5, $30, $31::jsonb FROM cdr
"""


async def create_cdr(
    conn: Executor,
    session_id: int,
    now: datetime,
    default_currency: str,
    max_power_w: Decimal | None,
) -> CdrCreated | None:
    """Price an ended session, store its CDR and ``cdr_created`` event; None if it has one
    or has not ended.

    Two round trips: one read (:func:`billing.cdr_inputs.read_for_cdr`), one write.
    """
    inputs = await read_for_cdr(conn, session_id, now)
    if inputs is None or inputs.cdr_id is None:
        return None  # unknown, running, or a repeated end (a charger retrying): the CDR stands
    session, scopes, chosen = inputs.session, inputs.scopes, inputs.chosen
    priced = price_inputs(inputs, now, default_currency, max_power_w)
    data = priced_json(priced)
    flags = data["flags"] + ([] if chosen else [NO_TARIFF])
    start_at = session.started_at or session.ended_at or now
    end_at = session.ended_at or now
    created = CdrCreated(
        charge_point_id=session.charge_point_id,
        occurred_at=end_at,
        cdr_id=inputs.cdr_id,
        session_id=session.id,
        transaction_id=session.transaction_id,
        evse_id=session.evse_id,
        connector_id=session.connector_id,
        id_token=session.id_token,
        tariff_id=chosen.stored.id if chosen else None,
        start_at=start_at.isoformat(),
        end_at=end_at.isoformat(),
        currency=priced.currency,
        total_energy_wh=data["total_energy_wh"],
        charging_seconds=data["charging_seconds"],
        parking_seconds=data["parking_seconds"],
        total_net=data["total_net"],
        total_tax=data["total_tax"],
        total_cost=data["total_cost"],
        flags=tuple(flags),
        items=tuple(data["items"]),
    )
    status = await conn.execute(
        _STORE,
        inputs.cdr_id,
        session.id,
        session.charge_point_id,
        session.evse_id,
        session.connector_id,
        session.transaction_id,
        session.protocol,
        session.id_token,
        scopes.token_group,
        scopes.site_id,
        chosen.stored.id if chosen else None,
        chosen.scope if chosen else None,
        start_at,
        end_at,
        priced.currency,
        priced.meter_start_wh,
        priced.meter_stop_wh,
        priced.energy_wh,
        json.dumps(data["energy_by_period"]),
        Decimal(data["charging_seconds"]),
        Decimal(data["parking_seconds"]),
        json.dumps(data["items"]),
        priced.net,
        priced.tax,
        priced.total,
        flags,
        session.stop_reason,
        created.event_id,
        created.type,
        created.occurred_at,
        created.payload_json(),
    )
    return created if status.split()[-1] == "1" else None


async def sessions_without_cdr(
    conn: Executor, since: datetime, after: tuple[datetime, int] | None, limit: int
) -> list[tuple[datetime, int]]:
    """Ended sessions changed since ``since`` with no CDR yet, as (updated_at, id), in that order.

    Pricing failed, or billing was off. Only sessions whose end was recorded since
    billing was installed (migration 5): history from before is not priced with
    today's tariffs. ``after``: the last of the previous page. ``since`` keeps a
    sweep to the sessions changed lately (BRIN ``sessions_updated_at``); the CDR
    of each is looked up one by one, never by a join that reads every CDR.
    """
    after_at, after_id = after or (since, 0)
    rows = await conn.fetch(
        """
        SELECT s.updated_at, s.id FROM sessions s
        WHERE s.status = 'ended' AND s.updated_at >= $1 AND (s.updated_at, s.id) > ($2, $3)
          AND s.updated_at >= (SELECT applied_at FROM schema_migrations WHERE version = 5)
          AND (SELECT c.id FROM cdrs c WHERE c.session_id = s.id) IS NULL
        ORDER BY s.updated_at, s.id LIMIT $4
        """,
        since,
        after_at,
        after_id,
        limit,
    )
    return [(r["updated_at"], r["id"]) for r in rows]


# -- reading -------------------------------------------------------------------

_QUANTITIES = ("meter_start_wh", "meter_stop_wh", "total_energy_wh", "charging_seconds",
               "parking_seconds")  # fmt: skip
_MONEY = ("total_net", "total_tax", "total_cost")


def _cdr(row: Any) -> dict[str, Any]:
    cdr = dict(row)
    for name in _QUANTITIES:
        cdr[name] = _text_or_none(cdr[name])
    for name in _MONEY:
        cdr[name] = decimal_text(cdr[name])
    cdr["energy_by_period"] = json.loads(cdr["energy_by_period"])
    cdr["items"] = json.loads(cdr["items"])
    cdr["flags"] = list(cdr["flags"])
    return cdr


async def get_cdr(conn: Executor, cdr_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM cdrs WHERE id = $1", cdr_id)
    return None if row is None else _cdr(row)


async def cdr_of_session(conn: Executor, session_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM cdrs WHERE session_id = $1", session_id)
    return None if row is None else _cdr(row)


async def list_cdrs(
    conn: Executor,
    *,
    charge_point_id: str | None = None,
    session_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """CDRs newest first; ``since`` / ``until`` bound the session end (until exclusive)."""
    where = Where()  # only the filters given: each combination planned for itself
    where.add("charge_point_id = {}", charge_point_id)
    where.add("session_id = {}", session_id)
    where.add("end_at >= {}", since)
    where.add("end_at < {}", until)
    where.add("id < {}", before_id)
    rows = await conn.fetch(
        f"SELECT * FROM cdrs WHERE {where.sql} ORDER BY id DESC LIMIT {where.param(limit)}",
        *where.args,
    )
    return [_cdr(r) for r in rows]


CSV_COLUMNS: Sequence[str] = (
    "id", "session_id", "charge_point_id", "evse_id", "connector_id", "transaction_id",
    "id_token", "token_group", "site_id", "tariff_id", "start_at", "end_at", "currency",
    "meter_start_wh", "meter_stop_wh", "total_energy_wh", "charging_seconds", "parking_seconds",
    "total_net", "total_tax", "total_cost", "flags", "stop_reason",
)  # fmt: skip


def to_csv(cdrs: Iterable[dict[str, Any]]) -> str:
    """CDRs as CSV (one row each; flags joined with ``|``; times in ISO 8601)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for cdr in cdrs:
        row = []
        for column in CSV_COLUMNS:
            value = cdr[column]
            if column == "flags":
                value = "|".join(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            row.append("" if value is None else value)
        writer.writerow(row)
    return out.getvalue()


async def session_cost(
    conn: Executor, charge_point_id: str, transaction_id: str
) -> SessionCost | None:
    """The CDR's total for the TransactionEvent(Ended) answer; None when no tariff applied.

    Through the session (unique per charger and transaction) to its CDR (unique per
    session): two key lookups, where the CDRs by charger and transaction read every
    CDR the charger ever had.
    """
    row = await conn.fetchrow(
        """
        SELECT c.total_cost, c.currency
        FROM sessions s JOIN cdrs c ON c.session_id = s.id
        WHERE s.charge_point_id = $1 AND s.transaction_id = $2 AND c.tariff_id IS NOT NULL
        """,
        charge_point_id,
        transaction_id,
    )
    if row is None:
        return None
    # OCPP's totalCost is a JSON number (a decimal in the CDR).
    return SessionCost(float(row["total_cost"]), row["currency"])
