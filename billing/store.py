"""Tariffs and their assignments in Postgres (SQL for both in one place).

Tariffs are immutable (a trigger refuses UPDATE/DELETE): a CDR's ``tariff_id``
always means the prices it was computed with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Any

from billing.money import decimal_text
from billing.tariff import ALL_WEEK, Tariff, TouPeriod
from csms.storage import Executor

SCOPES = ("token_group", "charger", "site", "default")  # most specific first

_PRICE_FIELDS = (
    "price_per_kwh",
    "price_per_charging_minute",
    "price_per_parking_minute",
    "parking_grace_minutes",
    "flat_fee",
    "min_price",
    "max_price",
    "vat_rate",
)


@dataclass(frozen=True, slots=True)
class StoredTariff:
    id: int
    name: str
    tariff: Tariff


@dataclass(frozen=True, slots=True)
class ChosenTariff:
    """The tariff a session is priced with, and the assignment that chose it."""

    stored: StoredTariff
    scope: str
    scope_id: str


def period_to_json(period: TouPeriod) -> dict[str, Any]:
    return {
        "name": period.name,
        "price_per_kwh": decimal_text(period.price_per_kwh),
        "start": period.start.strftime("%H:%M"),
        "end": period.end.strftime("%H:%M"),
        "weekdays": sorted(period.weekdays),
    }


def period_from_json(data: dict[str, Any]) -> TouPeriod:
    return TouPeriod(
        name=data["name"],
        price_per_kwh=Decimal(data["price_per_kwh"]),
        start=time.fromisoformat(data["start"]),
        end=time.fromisoformat(data["end"]),
        weekdays=frozenset(data.get("weekdays", ALL_WEEK)),
    )


def tariff_from_row(row: Any) -> StoredTariff:
    tariff = Tariff(
        currency=row["currency"],
        time_zone=row["time_zone"],
        periods=tuple(period_from_json(p) for p in json.loads(row["periods"])),
        **{f: row[f] for f in _PRICE_FIELDS if row[f] is not None},
    )
    return StoredTariff(row["id"], row["name"], tariff)


async def create_tariff(conn: Executor, name: str, tariff: Tariff) -> StoredTariff:
    row = await conn.fetchrow(
        """
        INSERT INTO tariffs (name, currency, time_zone, periods, price_per_kwh,
                             price_per_charging_minute, price_per_parking_minute,
                             parking_grace_minutes, flat_fee, min_price, max_price, vat_rate)
        VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING *
        """,
        name,
        tariff.currency,
        tariff.time_zone,
        json.dumps([period_to_json(p) for p in tariff.periods]),
        *(getattr(tariff, f) for f in _PRICE_FIELDS),
    )
    return tariff_from_row(row)


async def get_tariff(conn: Executor, tariff_id: int) -> StoredTariff | None:
    row = await conn.fetchrow("SELECT * FROM tariffs WHERE id = $1", tariff_id)
    return None if row is None else tariff_from_row(row)


async def list_tariffs(conn: Executor, limit: int, offset: int) -> list[StoredTariff]:
    rows = await conn.fetch("SELECT * FROM tariffs ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
    return [tariff_from_row(r) for r in rows]


async def assign(conn: Executor, scope: str, scope_id: str, tariff_id: int) -> None:
    """Make ``tariff_id`` the tariff of a scope (replacing the one it had)."""
    await conn.execute(
        """
        INSERT INTO tariff_assignments (scope, scope_id, tariff_id) VALUES ($1, $2, $3)
        ON CONFLICT (scope, scope_id)
        DO UPDATE SET tariff_id = EXCLUDED.tariff_id, assigned_at = now()
        """,
        scope,
        scope_id,
        tariff_id,
    )


async def unassign(conn: Executor, scope: str, scope_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM tariff_assignments WHERE scope = $1 AND scope_id = $2", scope, scope_id
    )
    return status.endswith(" 1")


async def list_assignments(conn: Executor) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT scope, scope_id, tariff_id, assigned_at FROM tariff_assignments"
        " ORDER BY scope, scope_id"
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True, slots=True)
class SessionScopes:
    """Where a session happened and who charged: what tariff assignment is matched on."""

    charge_point_id: str
    site_id: str | None
    token_group: str | None
    max_power_w: float | None = None  # the charger's, where its site says (smart charging)


async def scopes_of(conn: Executor, charge_point_id: str, id_token: str | None) -> SessionScopes:
    row = await conn.fetchrow(
        """
        SELECT scope.site_id, scope.max_power_w,
               (SELECT group_id FROM id_tokens WHERE lower(id_token) = lower($2)) AS token_group
        FROM billing_charger_scope($1) AS scope
        """,
        charge_point_id,
        id_token,
    )
    assert row is not None
    return SessionScopes(charge_point_id, row["site_id"], row["token_group"], row["max_power_w"])


# The most specific assignment of a session's scopes (token group, charger, site)
# and its tariff; shared with billing/cdr_inputs.py (the session end's single read).
TARIFF_CHOICE = f"""
    FROM tariff_assignments a JOIN tariffs t ON t.id = a.tariff_id
    WHERE (a.scope = 'token_group' AND a.scope_id = {{group}})
       OR (a.scope = 'charger' AND a.scope_id = {{cp}})
       OR (a.scope = 'site' AND a.scope_id = {{site}})
       OR a.scope = 'default'
    ORDER BY array_position(ARRAY[{", ".join(f"'{s}'" for s in SCOPES)}], a.scope)
    LIMIT 1
"""


async def choose_tariff(conn: Executor, scopes: SessionScopes) -> ChosenTariff | None:
    """The most specific assignment: token group, then charger, then site, then default."""
    row = await conn.fetchrow(
        f"SELECT a.scope, a.scope_id, t.* {TARIFF_CHOICE.format(group='$1', cp='$2', site='$3')}",
        scopes.token_group,
        scopes.charge_point_id,
        scopes.site_id,
    )
    if row is None:
        return None
    return ChosenTariff(tariff_from_row(row), row["scope"], row["scope_id"])
