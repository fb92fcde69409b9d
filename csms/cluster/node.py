"""One node of the cluster, as the CSMS process starts and stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg

from csms.central import CentralSystem
from csms.cluster.nodes import NodeMembership
from csms.cluster.remote_commands import CommandForwarder
from csms.config import Settings
from csms.router import CommandRouter, ConnectionRegistry


class ClusterNode:
    """Membership (lease, reaping) and command forwarding for one CSMS process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        settings: Settings,
        registry: ConnectionRegistry,
        central: CentralSystem,
    ) -> None:
        self.membership = NodeMembership(
            pool, settings, registry, central.bus, central.disconnected, dsn=dsn
        )
        self.forwarder = CommandForwarder(pool, dsn, settings, registry)

    @property
    def node_id(self) -> str:
        return self.membership.node_id

    async def start(self, router: CommandRouter) -> None:
        """Join (cleaning up after a crashed predecessor) and start taking commands.

        Before chargers connect and before services start, so that what they read
        at start-up no longer shows chargers of dead nodes as connected.
        """
        await self.membership.join()
        await self.forwarder.start()
        router.remote = self.forwarder

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self.membership.run(), self.forwarder.run()]

    async def advertise(self, api_url: str, ocpp_url: str) -> None:
        """Publish where this node serves, once its listeners are up."""
        self.membership.api_url, self.membership.ocpp_url = api_url, ocpp_url
        await self.membership.renew()

    async def stop(self) -> None:
        """After the chargers were disconnected: stop forwarding, leave the cluster."""
        await self.forwarder.stop()
        await asyncio.shield(self.membership.leave())
