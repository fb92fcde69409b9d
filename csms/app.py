"""Assemble the CSMS: database, central system, router and WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

import asyncpg
import structlog

from csms.api.app import ApiServer, create_app
from csms.api.context import ApiContext
from csms.bus import EventBus
from csms.central import CentralSystem
from csms.cluster.leases import LeaseManager
from csms.config import Settings
from csms.outbox.service import OutboxService
from csms.router import CommandRouter, ConnectionRegistry
from csms.server import OcppServer
from csms.services import Service, ServiceContext, build_services
from csms.storage.database import open_pool, resolve_dsn

log = structlog.get_logger(__name__)


class Csms:
    """One CSMS process. ``start()``/``stop()`` for tests, ``run()`` for the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ConnectionRegistry()
        self.router = CommandRouter(self.registry)
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        # Every node's committed events, for in-process consumers (csms/bus.py).
        self.bus = EventBus(retention_hours=settings.outbox_retention_hours)
        self._leases: LeaseManager | None = None
        self.dsn: str | None = None  # the database, once started (the embedded one's too)
        self._pool: asyncpg.Pool | None = None
        self._central: CentralSystem | None = None
        self._server: OcppServer | None = None
        self._api: ApiServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.outbox: OutboxService | None = None  # Kafka fan-out; relay lag for metrics
        self.services: list[Service] = []  # smart charging, billing, monitoring, ...

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "start() first"
        return self._pool

    @property
    def leases(self) -> LeaseManager:
        """This node's cluster leases (once-per-cluster services, one planner per site)."""
        assert self._leases is not None, "start() first"
        return self._leases

    @property
    def central(self) -> CentralSystem:
        assert self._central is not None, "start() first"
        return self._central

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.port

    @property
    def tls_port(self) -> int | None:
        """The wss port (security profiles 2 and 3), or None when TLS is not configured."""
        assert self._server is not None, "start() first"
        return self._server.tls_port

    @property
    def api_url(self) -> str:
        """Base URL of the operator API (``.../api/v1``)."""
        assert self._api is not None, "start() first"
        host = self.settings.api_host or self.settings.host
        if host in {"0.0.0.0", "::", ""}:
            host = socket.gethostname()
        return f"http://{host}:{self._api.port}/api/v1"

    @property
    def ocpp_url(self) -> str:
        """Base URL chargers connect to, with this machine's name for a wildcard host."""
        host = self.settings.host
        if host in {"0.0.0.0", "::", ""}:
            host = socket.gethostname()
        return f"ws://{host}:{self.port}{self.settings.ocpp_path_prefix.rstrip('/')}"

    async def start(self) -> None:
        dsn = self.dsn = await resolve_dsn(self.settings)
        self._pool = await open_pool(self.settings, dsn)
        await self.bus.start(self._pool, dsn)
        self._leases = LeaseManager(dsn, self.node_id)
        await self._leases.start()
        self._central = CentralSystem(self._pool, self.settings, self.bus)
        self._tasks.append(asyncio.create_task(self._central.run_last_seen_flusher()))
        self.outbox = OutboxService(self._pool, self.settings)
        self.outbox.announce()
        self._tasks.extend(asyncio.create_task(work) for work in self.outbox.tasks())
        self.services = build_services(
            ServiceContext(
                self._pool,
                self.router,
                self.registry,
                self.settings,
                self.bus,
                self._central,
                self._leases,
                self.node_id,
            )
        )
        for service in self.services:  # before chargers connect: no committed event missed
            await service.start()
        self._server = OcppServer(self._central, self.registry, self.settings)
        await self._server.start()
        api = create_app(
            ApiContext(self._pool, self.router, self.settings),
            [r for service in self.services for r in service.api_routers()],
        )
        self._api = ApiServer(
            api, self.settings.api_host or self.settings.host, self.settings.api_port
        )
        await self._api.start()

    async def stop(self) -> None:
        """Graceful: refuse new chargers, close sockets (1001), then flush and close the pool."""
        if self._api is not None:
            await self._api.stop()
            self._api = None
        if self._server is not None:
            await self._server.stop()
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("shutdown.service_failed", service=service.name)
        self.services = []
        await self.bus.stop()
        if self._leases is not None:
            await self._leases.stop()  # what this node led is taken over at once
            self._leases = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._central is not None:
            try:
                await self._central.flush_last_seen()
            except Exception:
                log.exception("shutdown.last_seen_not_flushed")
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await self.start()
        print(
            f"CSMS ready: chargers connect to {self.ocpp_url}/<charge_point_id> "
            f"(OCPP 2.0.1 and 1.6J on port {self.port}); operator API: {self.api_url}",
            flush=True,
        )
        if self.tls_port is not None:
            tls_url = self.ocpp_url.replace("ws://", "wss://", 1).replace(
                f":{self.port}/", f":{self.tls_port}/", 1
            )
            print(f"CSMS ready: TLS chargers connect to {tls_url}/<charge_point_id>", flush=True)
        await stopping.wait()
        log.info("shutdown.started", chargers_connected=len(self.registry))
        await self.stop()
        log.info("shutdown.done")
