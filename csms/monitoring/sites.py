"""Which site each charger belongs to, cached for the hot paths of live monitoring.

Smart charging owns the assignment (tables ``sc_sites`` and
``sc_charger_sites``, edited through ``PUT /api/v1/chargers/{id}/site``); this
module only reads it. The power-per-site gauge and the stream's ``site``
filter look a charger's site up for every meter sample and every
notification, so they read :class:`SiteMap`, an in-memory copy, never
Postgres. The copy is reloaded (one query for the whole fleet):

* every ``monitoring_site_refresh_interval`` seconds, which bounds how stale
  the stream's site filter can be for a subscriber already connected;
* at each ``GET /metrics`` scrape, so power per site is exact at scrape time
  (one query per scrape, none per sample);
* when a stream client subscribes with a ``site`` filter, so a new subscriber
  starts from the current membership.

Smart charging publishes no event on the bus when a charger is placed (its
``load_plan_computed`` goes to the event log only), so there is no change
notification to wait for; the reloads above are what bounds staleness.

Site ids are few (an operator creates them), so they are a bounded metric label.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import asyncpg
import structlog

from csms.storage import Executor

log = structlog.get_logger(__name__)

SiteOf = Callable[[str], str | None]


# -- storage (the SQL this module runs against smart charging's tables) ----------------


async def charger_sites(conn: Executor) -> dict[str, str]:
    """``{charge_point_id: site_id}`` of every charger placed in a site."""
    rows = await conn.fetch("SELECT charge_point_id, site_id FROM sc_charger_sites")
    return {row["charge_point_id"]: row["site_id"] for row in rows}


async def site_ids(conn: Executor) -> list[str]:
    """Every site, chargers or not."""
    rows = await conn.fetch("SELECT site_id FROM sc_sites ORDER BY site_id")
    return [row["site_id"] for row in rows]


async def site_exists(conn: Executor, site_id: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM sc_sites WHERE site_id = $1)", site_id)
    )


async def chargers_of_site(conn: Executor, site_id: str) -> list[str]:
    """The chargers placed in ``site_id``, sorted."""
    rows = await conn.fetch(
        "SELECT charge_point_id FROM sc_charger_sites WHERE site_id = $1 ORDER BY charge_point_id",
        site_id,
    )
    return [row["charge_point_id"] for row in rows]


# -- pure ------------------------------------------------------------------------------


def power_by_site(
    power_by_charger: Mapping[str, float], site_of: SiteOf, sites: frozenset[str], no_site: str
) -> dict[str, float]:
    """Watts per site label: every site in ``sites`` (0 when idle), chargers without one under
    ``no_site``."""
    watts = dict.fromkeys(sites, 0.0)
    watts[no_site] = 0.0
    for charge_point_id, power_w in power_by_charger.items():
        label = site_of(charge_point_id) or no_site
        watts[label] = watts.get(label, 0.0) + power_w
    return watts


# -- the cache -------------------------------------------------------------------------


class SiteMap:
    """An in-memory copy of the charger -> site assignment (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, refresh_interval: float) -> None:
        self._pool = pool
        self._refresh_interval = refresh_interval
        self._site_of: dict[str, str] = {}
        self._sites: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    def site_of(self, charge_point_id: str) -> str | None:
        return self._site_of.get(charge_point_id)

    @property
    def sites(self) -> frozenset[str]:
        """Every site known at the last refresh (including those without chargers)."""
        return self._sites

    async def refresh(self) -> None:
        """Reload the assignment from Postgres (one query per table)."""
        async with self._lock, self._pool.acquire() as conn:
            site_of = await charger_sites(conn)
            sites = frozenset(await site_ids(conn))
        self._site_of, self._sites = site_of, sites

    async def run(self) -> None:
        """Refresh every ``refresh_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except (asyncpg.PostgresError, OSError):
                log.warning("monitoring.site_refresh_failed", exc_info=True)
