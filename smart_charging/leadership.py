"""Which sites this node plans: one cluster-wide lease per site.

Every node runs the load manager, but a site is planned by exactly one node at a
time: the holder of the lease ``smart-charging:site:<site_id>``
(:mod:`csms.cluster.leases`, a Postgres advisory lock with a fencing token).
Every ``smart_charging_lease_interval`` seconds each node tries to take the
sites that nobody holds; so a site whose node dies (its database session ends
and the lock with it) is taken over within about that interval, and a node that
stops releases its sites at once. The new holder resumes from what the old one
stored (:mod:`smart_charging.planner_state`).

Without a lease manager (``None``: a process alone on its database, e.g. a
tool) the node plans every site, as a single-process CSMS did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import structlog

from csms.cluster.leases import Lease, LeaseManager, lease_key
from csms.storage import Executor

log = structlog.get_logger(__name__)

PREFIX = "smart-charging:site:"


def lease_name(site_id: str) -> str:
    return f"{PREFIX}{site_id}"


class SiteLeadership:
    """The sites this node holds, taken and given up as the cluster changes."""

    def __init__(
        self,
        manager: LeaseManager | None,
        on_gained: Callable[[str, Lease | None], Awaitable[None]],
        on_lost: Callable[[str], None],
    ) -> None:
        self.manager = manager
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._held: dict[str, Lease | None] = {}
        self._refreshing = asyncio.Lock()  # the periodic refresh and an API-triggered one

    @property
    def node_id(self) -> str | None:
        return self.manager.node_id if self.manager is not None else None

    def holds(self, site_id: str) -> bool:
        if site_id not in self._held:
            return False
        lease = self._held[site_id]
        return lease is None or lease.held

    def lease(self, site_id: str) -> Lease | None:
        return self._held.get(site_id)

    def token(self, site_id: str) -> int:
        lease = self._held.get(site_id)
        return lease.token if lease is not None else 0

    def sites(self) -> list[str]:
        return sorted(s for s in self._held if self.holds(s))

    async def refresh(self, site_ids: Iterable[str], busy: set[int] | None = None) -> None:
        """Give up lost and deleted sites, then try to take every site nobody plans.

        ``busy``: advisory-lock keys held right now (:func:`held_lock_keys`); sites whose
        lease is among them are not tried, so a node does not knock on every other node's
        sites at every refresh (one query instead of one per site).
        """
        async with self._refreshing:
            await self._refresh(set(site_ids), busy or set())

    async def _refresh(self, wanted: set[str], busy: set[int]) -> None:
        for site_id in sorted(self._held):
            if site_id not in wanted or not self.holds(site_id):
                await self._drop(site_id, release=site_id not in wanted)
        for site_id in sorted(wanted - set(self._held)):
            if lease_key(lease_name(site_id)) in busy:
                continue  # another node holds it
            if self.manager is None:
                lease: Lease | None = None
            else:
                lease = await self.manager.acquire(lease_name(site_id))
                if lease is None:
                    continue  # another node plans it
            self._held[site_id] = lease
            log.info("smart_charging.site_taken", site_id=site_id, node=self.node_id)
            await self._on_gained(site_id, lease)

    async def _drop(self, site_id: str, release: bool) -> None:
        self._held.pop(site_id, None)
        self._on_lost(site_id)
        log.info("smart_charging.site_given_up", site_id=site_id, node=self.node_id)
        if release and self.manager is not None:
            await self.manager.release(lease_name(site_id))

    async def release_all(self) -> None:
        for site_id in sorted(self._held):
            await self._drop(site_id, release=True)


async def held_lock_keys(conn: Executor) -> set[int]:
    """The 64-bit advisory-lock keys held by any session now (``pg_locks``)."""
    rows = await conn.fetch(
        "SELECT classid::bigint AS high, objid::bigint AS low FROM pg_locks "
        "WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
    )
    out = set()
    for r in rows:
        unsigned = (r["high"] << 32) | r["low"]
        out.add(unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned)
    return out
