"""The WebSocket endpoint chargers of both OCPP versions connect to.

``ws://HOST:PORT/{prefix}/{charge_point_id}``; the subprotocol the charger
offers picks the handler: ``ocpp2.0.1`` is preferred over ``ocpp1.6`` when a
charger offers both. A charger offering neither is refused in the handshake.
"""

from __future__ import annotations

import asyncio
import http
import ssl
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from csms import capacity
from csms.central import CentralSystem, ConnectionSuperseded, utcnow
from csms.config import Settings
from csms.drain import Drainer, DrainReport
from csms.events import ChargerConnected, ChargerDisconnected, Protocol
from csms.monitoring import metrics
from csms.router import ConnectionRegistry
from csms.security import proxy_protocol
from csms.security.gate import ChargerGate
from csms.security.tls import context_from
from handlers import HANDLERS

log = structlog.get_logger(__name__)

# In order of preference: the newest version both sides speak wins.
SUBPROTOCOLS = [Subprotocol(Protocol.V201.value), Subprotocol(Protocol.V16.value)]
_MAX_IDENTITY_LENGTH = 48  # OCPP 2.0.1 Part 4 section 3.1.1 (1.6 sets no limit)


def charge_point_id_from_path(path: str, prefix: str) -> str | None:
    """The identity in ``{prefix}/{id}``, percent-decoded; None if the path is not one."""
    route = urlsplit(path).path
    prefix = prefix.rstrip("/")
    if not route.startswith(prefix + "/"):
        return None
    identity = unquote(route[len(prefix) + 1 :])
    if not 0 < len(identity) <= _MAX_IDENTITY_LENGTH or "/" in identity:
        return None
    if not identity.isprintable():
        return None
    return identity


class OcppServer:
    """Accepts charger connections and runs one handler per socket."""

    def __init__(
        self, central: CentralSystem, registry: ConnectionRegistry, settings: Settings
    ) -> None:
        self.central = central
        self.registry = registry
        self.settings = settings
        self.gate = ChargerGate(central.pool, settings, credentials=central.credentials_of)
        self._server: Server | None = None
        self._tls_server: Server | None = None  # wss, when a TLS certificate is configured
        self._port: int | None = None  # kept: the sockets are gone once draining
        self._tls_port: int | None = None
        self._drainer: Drainer | None = None
        self.admission = capacity.ConnectAdmission(
            settings.connect_concurrency, hold_limit=min(settings.response_timeout, 15.0)
        )

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The wss port, or None when TLS is not configured."""
        return self._tls_port

    @property
    def accepting(self) -> bool:
        """False once draining (or stopped): new chargers go to the other nodes."""
        return self._server is not None and self._server.server.is_serving()

    async def start(self) -> None:
        tls = context_from(self.settings)  # before listening: bad TLS settings stop start-up
        capacity.raise_open_files_limit()
        self._server = await self._listen(self.settings.port, None)
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        if tls is not None:
            self._tls_server = await self._listen(self.settings.tls_port, tls)
            self._tls_port = int(next(iter(self._tls_server.sockets)).getsockname()[1])

    def stop_accepting(self) -> None:
        """Close the listening sockets; chargers already connected stay connected.

        With SO_REUSEPORT the kernel sends new connections to the other processes
        on the port. (Connections the kernel had queued for this socket but we had
        not accepted yet are reset; the chargers retry.)
        """
        for server in (self._server, self._tls_server):
            if server is not None:
                server.server.close()

    async def drain(self, window: float) -> DrainReport:
        """Stop accepting, then close every charger (1012) idle, spread over ``window`` s."""
        self.stop_accepting()
        self._drainer = Drainer(window, idle_timeout=self.settings.response_timeout)
        try:
            report = await self._drainer.drain(self.registry.all())
            # Chargers whose handshake was under way when the listener closed: now.
            late = [c for c in self.registry.all() if c.websocket.protocol.state is State.OPEN]
            if late:
                self._drainer.hurry()
                extra = await self._drainer.drain(late)
                report.chargers += extra.chargers
                report.closed_idle += extra.closed_idle
                report.closed_busy += extra.closed_busy
            return report
        finally:
            self._drainer = None

    def hurry_drain(self) -> None:
        """Close the chargers a running drain has not closed yet, now."""
        if self._drainer is not None:
            self._drainer.hurry()

    async def _listen(self, port: int, tls: ssl.SSLContext | None) -> Server:
        server = await serve(
            self._handle,
            self.settings.host,
            port,
            ssl=tls,
            subprotocols=SUBPROTOCOLS,
            select_subprotocol=self._select_subprotocol,
            process_request=self._check_path,
            max_size=self.settings.hard_frame_limit,
            create_connection=(
                proxy_protocol.connection_class(self.gate.proxies)
                if self.settings.proxy_protocol
                else None
            ),
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
            server_header=None,
            reuse_port=self.settings.reuse_port,  # several worker processes on one port
            **capacity.server_options(self.settings),
        )
        capacity.widen_listen_backlog(server.sockets)
        return server

    async def stop(self) -> None:
        """Stop accepting, close every charger socket with 1001 (going away), await handlers."""
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close(close_connections=True)
        for server in (self._server, self._tls_server):
            if server is not None:
                await server.wait_closed()

    async def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a wrong path, then let the gate authenticate the charger (profiles 0-3)."""
        charge_point_id = charge_point_id_from_path(request.path, self.settings.ocpp_path_prefix)
        if charge_point_id is None:
            log.warning("connection.refused_bad_path", path=request.path)
            return connection.respond(
                http.HTTPStatus.NOT_FOUND,
                f"connect to {self.settings.ocpp_path_prefix}/<charge_point_id>\n",
            )
        await self.admission.enter(connection)  # left once booted (_serve_charger)
        try:
            refused = await self.gate.check(connection, request, charge_point_id)
        except BaseException:
            self.admission.leave(connection)
            raise
        if refused is not None:
            self.admission.leave(connection)
        return refused

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        for subprotocol in SUBPROTOCOLS:
            if subprotocol in offered:
                return subprotocol
        log.warning(
            "connection.refused_no_subprotocol",
            path=connection.request.path if connection.request else None,
            offered=list(offered),
            supported=SUBPROTOCOLS,
        )
        raise NegotiationError(
            f"offered subprotocols {list(offered)} include none of {', '.join(SUBPROTOCOLS)}"
        )

    async def _handle(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None and websocket.subprotocol is not None
        charge_point_id = charge_point_id_from_path(
            websocket.request.path, self.settings.ocpp_path_prefix
        )
        assert charge_point_id is not None  # checked in _check_path
        protocol = Protocol(websocket.subprotocol)
        with structlog.contextvars.bound_contextvars(
            charge_point_id=charge_point_id, protocol=protocol.value
        ):
            await self._serve_charger(websocket, charge_point_id, protocol)

    async def _serve_charger(
        self, websocket: ServerConnection, charge_point_id: str, protocol: Protocol
    ) -> None:
        connection = HANDLERS[protocol](charge_point_id, websocket, self.central, self.settings)
        setup = asyncio.create_task(self.admission.leave_when(websocket, connection.boot_answered))
        replaced = self.registry.replace(connection)
        if replaced is not None:
            log.info("charger.connection_replaced")
            await replaced.websocket.close(code=1000, reason="replaced by a newer connection")
        assert websocket.request is not None
        client = self.gate.client(websocket, websocket.request)  # behind a trusted proxy too
        remote = websocket.remote_address
        try:
            connection.generation, connection.registration = await self.central.connect(
                ChargerConnected(
                    charge_point_id=charge_point_id,
                    occurred_at=utcnow(),
                    protocol=protocol,
                    remote_address=(
                        f"{remote[0]}:{remote[1]}"
                        if remote and client.host == str(remote[0])
                        else client.host
                    ),
                )
            )
            log.info("charger.connected", registration=connection.registration)
            self.admission.connected(websocket)
            await connection.start()
        except ConnectionSuperseded as superseded:
            connection.generation = superseded.generation
            log.info("charger.connection_superseded", generation=connection.generation)
            await websocket.close(code=1000, reason="superseded by a newer connection")
        except ConnectionClosed:
            pass
        finally:
            setup.cancel()
            self.admission.leave(websocket)
            connection.fail_pending()
            if self.registry.remove(connection) and connection.generation is not None:
                try:
                    await self.central.disconnected(
                        ChargerDisconnected(
                            charge_point_id=charge_point_id,
                            occurred_at=utcnow(),
                            close_code=websocket.close_code,
                            # "silent": monitoring's watchdog gave up on a mute charger
                            reason=connection.offline_reason or websocket.close_reason,
                        ),
                        connection.generation,
                    )
                except Exception:
                    log.exception("charger.disconnect_not_recorded")
                went_offline = connection.offline_reason or "closed"
                metrics.CHARGERS_WENT_OFFLINE.labels(went_offline).inc()
            log.info("charger.disconnected", close_code=websocket.close_code)
