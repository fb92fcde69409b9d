"""Every SQL statement of smart charging (tables ``sc_*`` of migrations 0006 and 0010)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time
from typing import Any

import asyncpg

from csms.storage import Executor
from smart_charging.model import ChargerPlace, GroupConfig, SiteConfig, SiteTree
from smart_charging.shifting import PriceSchedule, TariffEntry

_SITE_COLUMNS = (
    "site_id, name, phase_limit_a, power_limit_kw, dr_limit_a, dr_until, "
    "min_current_a, fallback_current_a, arrival_reserve_a, allocation_policy"
)
SITE_FIELDS = (
    "name",
    "phase_limit_a",
    "power_limit_kw",
    "min_current_a",
    "fallback_current_a",
    "arrival_reserve_a",
    "allocation_policy",
)
GROUP_FIELDS = ("parent_id", "name", "phase_limit_a", "power_limit_kw")
PLACE_FIELDS = (
    "site_id",
    "group_id",
    "max_current_a",
    "connector_max_current_a",
    "phases",
    "priority",
)


class Conflict(ValueError):
    """The change would break a reference (unknown site, group or charger) or a duplicate."""


def _site(row: asyncpg.Record) -> SiteConfig:
    return SiteConfig(**dict(row))


def _group(row: asyncpg.Record) -> GroupConfig:
    return GroupConfig(**{k: row[k] for k in ("group_id", *GROUP_FIELDS)})


def _place(row: asyncpg.Record) -> ChargerPlace:
    fields = {k: row[k] for k in ("charge_point_id", *PLACE_FIELDS[1:])}
    return ChargerPlace(**fields, connectors=max(1, row["evses"] or 0))


async def list_sites(conn: Executor) -> list[SiteConfig]:
    rows = await conn.fetch(f"SELECT {_SITE_COLUMNS} FROM sc_sites ORDER BY site_id")
    return [_site(r) for r in rows]


async def get_site(conn: Executor, site_id: str) -> SiteConfig | None:
    row = await conn.fetchrow(f"SELECT {_SITE_COLUMNS} FROM sc_sites WHERE site_id = $1", site_id)
    return _site(row) if row else None


async def create_site(conn: Executor, site_id: str, fields: dict[str, Any]) -> SiteConfig:
    names = ["site_id", *fields]
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    try:
        row = await conn.fetchrow(
            f"INSERT INTO sc_sites ({', '.join(names)}) VALUES ({placeholders}) "
            f"RETURNING {_SITE_COLUMNS}",
            site_id,
            *fields.values(),
        )
    except asyncpg.UniqueViolationError as e:
        raise Conflict(f"site {site_id!r} exists") from e
    assert row is not None
    return _site(row)


async def update_site(conn: Executor, site_id: str, fields: dict[str, Any]) -> SiteConfig | None:
    """Set ``fields`` (keys from SITE_FIELDS or dr_limit_a/dr_until) on a site."""
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    row = await conn.fetchrow(
        f"UPDATE sc_sites SET {sets}, updated_at = now() WHERE site_id = $1 "
        f"RETURNING {_SITE_COLUMNS}",
        site_id,
        *fields.values(),
    )
    return _site(row) if row else None


async def delete_site(conn: Executor, site_id: str) -> bool:
    return (await conn.execute("DELETE FROM sc_sites WHERE site_id = $1", site_id)) != "DELETE 0"


async def load_tree(conn: Executor, site_id: str) -> SiteTree | None:
    site = await get_site(conn, site_id)
    if site is None:
        return None
    groups = await _groups(conn, site_id)
    places = await _places(conn, site_id)
    prices = await get_prices(conn, site_id)
    return SiteTree(site, groups, places, prices)


async def load_tree_at_once(pool: asyncpg.Pool, site_id: str) -> SiteTree | None:
    """:func:`load_tree` with its four reads at once, each on a connection of ``pool``
    (a plan waits for the slowest, not for their sum)."""
    site, groups, places, prices = await asyncio.gather(
        get_site(pool, site_id),
        _groups(pool, site_id),
        _places(pool, site_id),
        get_prices(pool, site_id),
    )
    return SiteTree(site, groups, places, prices) if site is not None else None


async def _groups(conn: Executor, site_id: str) -> tuple[GroupConfig, ...]:
    rows = await conn.fetch(
        "SELECT group_id, parent_id, name, phase_limit_a, power_limit_kw FROM sc_groups "
        "WHERE site_id = $1 ORDER BY group_id",
        site_id,
    )
    return tuple(_group(g) for g in rows)


async def _places(conn: Executor, site_id: str) -> tuple[ChargerPlace, ...]:
    rows = await conn.fetch(
        # EVSEs from the chargers' status reports (none reported yet: one).
        "SELECT p.*, (SELECT count(DISTINCT k.evse_id) FROM connectors k "
        "WHERE k.charge_point_id = p.charge_point_id AND k.evse_id > 0) AS evses "
        "FROM sc_charger_sites p WHERE p.site_id = $1 ORDER BY p.charge_point_id",
        site_id,
    )
    return tuple(_place(p) for p in rows)


async def get_prices(conn: Executor, site_id: str) -> PriceSchedule | None:
    """The site's daily price schedule (time of use), or None without one."""
    row = await conn.fetchrow(
        "SELECT time_zone, entries FROM sc_price_schedules WHERE site_id = $1", site_id
    )
    if row is None:
        return None
    entries = tuple(
        TariffEntry(time.fromisoformat(e["start"]), float(e["price"]))
        for e in json.loads(row["entries"])
    )
    return PriceSchedule(row["time_zone"], entries)


async def put_prices(conn: Executor, site_id: str, prices: PriceSchedule) -> None:
    """Create or replace the site's price schedule (raises Conflict for an unknown site)."""
    entries = [{"start": e.start.isoformat(), "price": e.price} for e in prices.entries]
    try:
        await conn.execute(
            """
            INSERT INTO sc_price_schedules (site_id, time_zone, entries)
            VALUES ($1, $2, $3::jsonb)
            ON CONFLICT (site_id) DO UPDATE SET
                time_zone = EXCLUDED.time_zone, entries = EXCLUDED.entries, updated_at = now()
            """,
            site_id,
            prices.zone,
            json.dumps(entries),
        )
    except asyncpg.ForeignKeyViolationError as e:
        raise Conflict(f"unknown site {site_id!r}") from e


async def delete_prices(conn: Executor, site_id: str) -> bool:
    result = await conn.execute("DELETE FROM sc_price_schedules WHERE site_id = $1", site_id)
    return result != "DELETE 0"


async def put_group(
    conn: Executor, site_id: str, group_id: str, fields: dict[str, Any]
) -> GroupConfig:
    """Create or replace a group (every field not given is reset to its default)."""
    values = [fields.get(name) for name in GROUP_FIELDS]
    try:
        row = await conn.fetchrow(
            """
            INSERT INTO sc_groups (site_id, group_id, parent_id, name, phase_limit_a,
                                   power_limit_kw)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (site_id, group_id) DO UPDATE SET
                parent_id = EXCLUDED.parent_id, name = EXCLUDED.name,
                phase_limit_a = EXCLUDED.phase_limit_a, power_limit_kw = EXCLUDED.power_limit_kw
            RETURNING group_id, parent_id, name, phase_limit_a, power_limit_kw
            """,
            site_id,
            group_id,
            *values,
        )
    except asyncpg.ForeignKeyViolationError as e:
        raise Conflict(
            f"unknown site {site_id!r} or parent group {fields.get('parent_id')!r}"
        ) from e
    except asyncpg.CheckViolationError as e:
        raise Conflict("a group cannot be its own parent") from e
    assert row is not None
    return _group(row)


async def delete_group(conn: Executor, site_id: str, group_id: str) -> bool:
    result = await conn.execute(
        "DELETE FROM sc_groups WHERE site_id = $1 AND group_id = $2", site_id, group_id
    )
    return result != "DELETE 0"


async def group_ancestors(conn: Executor, site_id: str, group_id: str) -> list[str]:
    """The group and its ancestors (to refuse a parent that would make a cycle)."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE up(group_id, parent_id, depth) AS (
            SELECT group_id, parent_id, 0 FROM sc_groups WHERE site_id = $1 AND group_id = $2
            UNION ALL
            SELECT g.group_id, g.parent_id, up.depth + 1 FROM sc_groups g
            JOIN up ON g.site_id = $1 AND g.group_id = up.parent_id WHERE up.depth < 100
        )
        SELECT group_id FROM up
        """,
        site_id,
        group_id,
    )
    return [r["group_id"] for r in rows]


async def get_place(conn: Executor, charge_point_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM sc_charger_sites WHERE charge_point_id = $1", charge_point_id
    )
    return dict(row) if row else None


async def put_place(conn: Executor, charge_point_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Assign a charger to a site (every field not given is reset to its default)."""
    defaults = {"group_id": None, "max_current_a": 32.0, "connector_max_current_a": None}
    defaults |= {"phases": 3, "priority": 0}
    values = [fields.get(name, defaults.get(name)) for name in PLACE_FIELDS]
    try:
        row = await conn.fetchrow(
            """
            INSERT INTO sc_charger_sites (charge_point_id, site_id, group_id, max_current_a,
                                          connector_max_current_a, phases, priority)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (charge_point_id) DO UPDATE SET
                site_id = EXCLUDED.site_id, group_id = EXCLUDED.group_id,
                max_current_a = EXCLUDED.max_current_a,
                connector_max_current_a = EXCLUDED.connector_max_current_a,
                phases = EXCLUDED.phases, priority = EXCLUDED.priority
            RETURNING *
            """,
            charge_point_id,
            *values,
        )
    except asyncpg.ForeignKeyViolationError as e:
        raise Conflict(
            f"unknown charger {charge_point_id!r}, site {fields.get('site_id')!r} "
            f"or group {fields.get('group_id')!r} of that site"
        ) from e
    assert row is not None
    return dict(row)


async def delete_place(conn: Executor, charge_point_id: str) -> str | None:
    """Take a charger out of its site; return the site it was in."""
    value: str | None = await conn.fetchval(
        "DELETE FROM sc_charger_sites WHERE charge_point_id = $1 RETURNING site_id",
        charge_point_id,
    )
    return value


async def site_of(conn: Executor, charge_point_id: str) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT site_id FROM sc_charger_sites WHERE charge_point_id = $1", charge_point_id
    )
    return value


async def site_chargers(conn: Executor, site_id: str) -> list[asyncpg.Record]:
    """Per charger of the site: its OCPP version if it is connected (to any node; else
    None) and the units it takes in a schedule (None: not known)."""
    return await conn.fetch(
        """
        SELECT p.charge_point_id, c.protocol, u.units
        FROM sc_charger_sites p
        LEFT JOIN chargers c ON c.charge_point_id = p.charge_point_id
                            AND c.connected AND c.protocol IS NOT NULL
        LEFT JOIN charger_rate_units u ON u.charge_point_id = p.charge_point_id
        WHERE p.site_id = $1
        """,
        site_id,
    )


async def active_sessions(conn: Executor, site_id: str) -> list[asyncpg.Record]:
    """Active sessions on the site's chargers, with the preferences set for them."""
    return await conn.fetch(
        """
        SELECT s.charge_point_id, s.transaction_id, s.protocol,
               coalesce(s.evse_id, s.connector_id) AS evse_id, s.started_at, s.energy_wh,
               p.priority, p.departure_at, p.energy_wanted_wh
        FROM sessions s
        JOIN sc_charger_sites c ON c.charge_point_id = s.charge_point_id
        LEFT JOIN sc_session_preferences p
               ON p.charge_point_id = s.charge_point_id AND p.transaction_id = s.transaction_id
        WHERE c.site_id = $1 AND s.status = 'active'
          AND coalesce(s.evse_id, s.connector_id) IS NOT NULL
        ORDER BY s.started_at NULLS LAST, s.id
        """,
        site_id,
    )


async def ended_sessions(conn: Executor, site_id: str, since: datetime) -> list[asyncpg.Record]:
    """Sessions on the site's chargers that started since ``since`` and ended, with the
    energy they took (the history time-of-use plans draw expected arrivals from)."""
    return await conn.fetch(
        """
        SELECT s.charge_point_id, s.started_at, s.ended_at, s.energy_wh
        FROM sessions s
        JOIN sc_charger_sites c ON c.charge_point_id = s.charge_point_id
        WHERE c.site_id = $1 AND s.status = 'ended' AND s.started_at >= $2
          AND s.ended_at > s.started_at AND s.energy_wh > 0
        ORDER BY s.started_at, s.id
        """,
        site_id,
        since,
    )


async def put_preferences(
    conn: Executor,
    charge_point_id: str,
    transaction_id: str,
    priority: int | None,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO sc_session_preferences (charge_point_id, transaction_id, priority,
                                            departure_at, energy_wanted_wh)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (charge_point_id, transaction_id) DO UPDATE SET
            priority = EXCLUDED.priority, departure_at = EXCLUDED.departure_at,
            energy_wanted_wh = EXCLUDED.energy_wanted_wh, updated_at = now()
        """,
        charge_point_id,
        transaction_id,
        priority,
        departure_at,
        energy_wanted_wh,
    )


async def put_needs(
    conn: Executor,
    charge_point_id: str,
    transaction_id: str,
    departure_at: datetime | None,
    energy_wanted_wh: float | None,
) -> None:
    """What the EV says it needs (departure, energy); an operator-set priority stays."""
    await conn.execute(
        """
        INSERT INTO sc_session_preferences (charge_point_id, transaction_id, departure_at,
                                            energy_wanted_wh)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (charge_point_id, transaction_id) DO UPDATE SET
            departure_at = EXCLUDED.departure_at,
            energy_wanted_wh = EXCLUDED.energy_wanted_wh, updated_at = now()
        """,
        charge_point_id,
        transaction_id,
        departure_at,
        energy_wanted_wh,
    )
