"""Assemble the CSMS: database, central system, router and WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket

import asyncpg
import structlog

from csms import capacity, gc_tuning
from csms.api.app import ApiServer, create_app
from csms.api.context import ApiContext
from csms.bus import EventBus
from csms.central import CentralSystem
from csms.clock import SYSTEM_CLOCK, Clock
from csms.cluster.leases import LeaseManager
from csms.cluster.node import ClusterNode
from csms.config import Settings, default_node_id
from csms.drain import DrainReport
from csms.loop_lag import LoopLagMonitor
from csms.loop_stalls import StallTracer
from csms.outbox.service import OutboxService
from csms.revocation import RevocationListener
from csms.router import CommandRouter, ConnectionRegistry
from csms.security.tls import api_tls
from csms.server import OcppServer
from csms.services import Service, ServiceContext, build_services
from csms.storage.database import open_api_pool, open_pool, resolve_dsn

log = structlog.get_logger(__name__)


class Csms:
    """One CSMS process. ``start()``/``stop()`` for tests, ``run()`` for the CLI."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        if not settings.node_id:  # this process's own <hostname>-<pid> (also in a worker)
            settings = dataclasses.replace(settings, node_id=default_node_id())
        self.settings = settings
        self.clock = clock  # what services read time from (csms/clock.py)
        self.registry = ConnectionRegistry()
        self.router = CommandRouter(self.registry)
        self.node_id: str = settings.node_id or default_node_id()
        # Every node's committed events, for in-process consumers (csms/bus.py).
        self.bus = EventBus(retention_hours=settings.outbox_retention_hours)
        self._leases: LeaseManager | None = None
        self.dsn: str | None = None  # the database, once started (the embedded one's too)
        self._pool: asyncpg.Pool | None = None
        self._api_pool: asyncpg.Pool | None = None  # the operator API's own connections
        self._central: CentralSystem | None = None
        self._server: OcppServer | None = None
        self._api: ApiServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.outbox: OutboxService | None = None  # Kafka fan-out; relay lag for metrics
        self.services: list[Service] = []  # smart charging, billing, monitoring, ...
        self.cluster: ClusterNode | None = None  # lease, presence reaping, forwarding
        self.loop_lag: LoopLagMonitor | None = None  # csms_event_loop_lag_* of this process
        self.stall_tracer: StallTracer | None = None  # loop.stall: what held the loop

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
    def api_port(self) -> int:
        """The port the operator API and dashboard listen on (resolved when 0 was asked)."""
        assert self._api is not None, "start() first"
        return self._api.port

    @property
    def api_url(self) -> str:
        """Base URL of the operator API (``.../api/v1``)."""
        assert self._api is not None, "start() first"
        host = self.settings.api_host or self.settings.host
        if host in {"0.0.0.0", "::", ""}:
            host = socket.gethostname()
        scheme = "https" if self._api.tls else "http"
        return f"{scheme}://{host}:{self._api.port}/api/v1"

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
        self.loop_lag = LoopLagMonitor(self.settings.loop_lag_warn_ms / 1000)
        self._tasks.append(asyncio.create_task(self.loop_lag.run()))
        if self.settings.loop_stall_trace_ms > 0:  # on the lag monitor's beat: one timer
            self.stall_tracer = StallTracer(
                self.settings.loop_stall_trace_ms / 1000, beat_s=self.loop_lag.interval
            )
            self.stall_tracer.start(self.loop_lag)
        self.cluster = ClusterNode(self._pool, dsn, self.settings, self.registry, self._central)
        await self.cluster.start(self.router)  # before services and chargers: see its doc
        self._tasks.extend(asyncio.create_task(work) for work in self.cluster.tasks())
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
                dsn,
                self.clock,
            )
        )
        for service in self.services:  # before chargers connect: no committed event missed
            await service.start()
        self._server = OcppServer(self._central, self.registry, self.settings)
        await self._server.start()
        # Full garbage collections wait while chargers are being set up (docs/capacity.md)
        gc_pacing = capacity.FullCollections(self._server.admission)
        self._tasks.append(asyncio.create_task(gc_pacing.run()))
        revocation = RevocationListener(dsn, self._pool, self.registry)  # 15.4: at once
        self._tasks.append(asyncio.create_task(revocation.run()))
        self._api_pool = await open_api_pool(self.settings, dsn)
        api = create_app(
            ApiContext(self._api_pool, self.router, self.settings),
            [r for service in self.services for r in service.api_routers()],
        )
        self._api = ApiServer(
            api,
            self.settings.api_host or self.settings.host,
            self.settings.api_port,
            api_tls(self.settings),
            reuse_port=self.settings.reuse_port,
        )
        await self._api.start()
        await self.cluster.advertise(self.api_url, self.ocpp_url)

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
        if self.stall_tracer is not None:  # before its beat (the lag monitor's task) ends
            self.stall_tracer.stop()
            self.stall_tracer = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.cluster is not None:
            await self.cluster.stop()
            self.cluster = None
        if self._central is not None:
            for committer in (self._central.group_commit, self._central.setup_commit):
                if committer is not None:
                    await committer.drain()  # before the pool closes
            try:
                await self._central.flush_last_seen()
            except Exception:
                log.exception("shutdown.last_seen_not_flushed")
        for pool in (self._api_pool, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._api_pool = None

    async def drain(self, window: float) -> DrainReport:
        """Hand this node's chargers to the others: stop accepting, close them over ``window``.

        The API keeps serving (and commands to chargers not closed yet keep working)
        until :meth:`stop`.
        """
        assert self._server is not None, "start() first"
        self._server.stop_accepting()  # first: announcing waits for a pool connection
        if self.cluster is not None:
            try:  # listed as draining in GET /cluster/nodes; the drain goes on regardless
                await self.cluster.membership.set_draining(True)
            except Exception:
                log.exception("drain.not_announced")
        return await self._server.drain(window)

    async def run(self) -> None:
        """Serve until SIGTERM (drain over drain_seconds) or SIGINT (drain at once), then stop.

        A second signal during the drain closes the remaining chargers at once.
        """
        loop = asyncio.get_running_loop()
        signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, signals.put_nowait, sig)
        await self.start()
        # A process's own heap only (tests start several Csms in one process: start()
        # does not freeze theirs).
        gc_tuning.apply_thresholds(self.settings)
        gc_tuning.freeze_start_up_heap(self.settings)
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
        first = await signals.get()
        window = self.settings.drain_seconds if first is signal.SIGTERM else 0.0
        log.info(
            "shutdown.started",
            signal=first.name,
            chargers_connected=len(self.registry),
            drain_seconds=window,
        )
        drain = asyncio.create_task(self.drain(window))
        hurry = asyncio.create_task(signals.get())
        await asyncio.wait({drain, hurry}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            log.info("shutdown.hurried")
            assert self._server is not None
            self._server.hurry_drain()
        hurry.cancel()
        try:
            await drain
        except Exception:
            log.exception("shutdown.drain_failed")
        await self.stop()
        log.info("shutdown.done")
