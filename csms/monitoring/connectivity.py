"""Connectivity: who is online, offline detection of silent chargers, downtime history.

A charger is online while its WebSocket is open *and* it speaks. The
:class:`LivenessWatchdog` looks at every live connection each
``monitoring_liveness_check_interval`` seconds:

* silent for longer than the heartbeat interval: it sends a WebSocket ping,
  whose pong counts as hearing from the charger (a charger may legitimately
  send nothing between heartbeats, but its TCP stack and WebSocket layer
  must still answer);
* silent (no frame, no pong) for ``monitoring_silence_factor`` heartbeat
  intervals: the charger is marked offline (``offline_reason = "silent"``)
  and its socket closed, even though TCP may still look open (a half-open
  connection after a cellular modem lost its link looks exactly like that).

:class:`ConnectivityRecorder` turns committed connect/disconnect and
connector-status events into the intervals availability is computed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from csms.connection import OcppConnection
from csms.events import ChargerConnected, ChargerDisconnected, ConnectorStatusChanged, Event
from csms.monitoring import connectivity_store as store
from csms.monitoring import metrics
from csms.router import ConnectionRegistry

log = structlog.get_logger(__name__)

SILENT = "silent"
STATUS_BATCH_MAX = 500  # statuses a flush writes in one transaction
_CLOSE_GRACE_S = 0.25  # a silent peer will not answer the close handshake either


def liveness_verdict(
    silent_s: float, heartbeat_interval: float, silence_factor: float
) -> str | None:
    """``"offline"``, ``"probe"`` (send a ping) or None (all well), from seconds of silence."""
    if silent_s > silence_factor * heartbeat_interval:
        return "offline"
    if silent_s > heartbeat_interval:
        return "probe"
    return None


class LivenessWatchdog:
    """Marks silent chargers offline; see the module docstring."""

    def __init__(
        self,
        registry: ConnectionRegistry,
        heartbeat_interval: float,
        silence_factor: float,
        check_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.heartbeat_interval = heartbeat_interval
        self.silence_factor = silence_factor
        self.check_interval = check_interval
        self.clock = clock
        self._closing: set[asyncio.Task[None]] = set()
        self._probing: set[OcppConnection] = set()  # a ping is in flight

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                self.check_once()
            except Exception:
                log.exception("liveness.check_failed")

    def check_once(self) -> None:
        now = self.clock()
        for connection in self.registry.all():
            if connection.offline_reason is not None:
                continue
            verdict = liveness_verdict(
                now - connection.last_heard, self.heartbeat_interval, self.silence_factor
            )
            if verdict == "offline":
                self._go_offline(connection, now - connection.last_heard)
            elif verdict == "probe":
                self._probe(connection)

    def _probe(self, connection: OcppConnection) -> None:
        if connection in self._probing:
            return
        self._probing.add(connection)

        async def ping() -> None:
            try:
                pong = await connection.websocket.ping()
                await pong
                connection.last_heard = self.clock()
            except Exception:
                pass  # closed meanwhile: the server records the disconnect
            finally:
                self._probing.discard(connection)

        self._spawn(ping())

    def _go_offline(self, connection: OcppConnection, silent_s: float) -> None:
        connection.offline_reason = SILENT
        log.warning(
            "charger.silent_marked_offline",
            charge_point_id=connection.id,
            silent_s=round(silent_s, 1),
        )

        async def close() -> None:
            websocket = connection.websocket
            try:
                await asyncio.wait_for(
                    websocket.close(1001, "no message or pong; marked offline"), _CLOSE_GRACE_S
                )
            except (TimeoutError, Exception):
                websocket.transport.abort()  # the handler then records the disconnect

        self._spawn(close())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        for task in list(self._closing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class ConnectivityRecorder:
    """Writes downtime and connector-status intervals from committed events."""

    def __init__(self, pool: asyncpg.Pool, presumed_dead_s: float) -> None:
        self.pool = pool
        self.presumed_dead_s = presumed_dead_s  # silence after which a charger is offline
        # Statuses applied and not written yet, in feed order (see :meth:`flush`).
        self._statuses: list[store.StatusRow] = []

    async def start(self, registry: ConnectionRegistry) -> None:
        """Open downtime for every known charger that is not connected (e.g. after a crash)."""
        connected = {c.id for c in registry.all()}
        opened = await store.open_downtime_for_all_offline(
            self.pool, connected, self.presumed_dead_s
        )
        if opened:
            log.info("connectivity.offline_at_start", chargers=opened)

    # The event types :meth:`apply` records (it ignores every other).
    RECORDED = frozenset(
        {ChargerConnected.type, ChargerDisconnected.type, ConnectorStatusChanged.type}
    )

    async def apply(self, event: Event) -> None:
        if isinstance(event, ChargerConnected):
            await store.close_downtime(self.pool, event.charge_point_id, event.occurred_at)
        elif isinstance(event, ChargerDisconnected):
            # "node_lost": the node holding its socket died (csms.cluster.nodes)
            reason = event.reason if event.reason in (SILENT, "node_lost") else "closed"
            await store.open_downtime(self.pool, event.charge_point_id, event.occurred_at, reason)
        elif isinstance(event, ConnectorStatusChanged) and event.evse_id > 0:
            # The charger's time, unless its clock runs ahead of ours: downtime is on
            # the server's clock, and a status "from the future" would fall outside
            # every report window.
            at = min(event.occurred_at, datetime.now(UTC))
            self._statuses.append(
                (event.charge_point_id, event.evse_id, event.connector_id, event.status.value, at)
            )
            if len(self._statuses) >= STATUS_BATCH_MAX:
                await self.flush()

    async def flush(self) -> None:
        """Write the statuses applied since the last flush: one transaction, one round trip.

        The once-per-cluster feed calls it whenever it has handled what was
        delivered and before storing its cursor, so the cursor never passes a
        status not written. One at a time, a status cost the lease holder a round
        trip each, and after a burst (a minute of 3,000 calls/s) it spent seconds
        catching up beside the chargers (docs/profiling.md). A database that cannot
        be reached keeps them pending (the cursor stays behind them); a row refused
        otherwise is written alone, and one that still fails is logged and dropped,
        as when each was written by itself.
        """
        while self._statuses:
            rows = self._statuses[:STATUS_BATCH_MAX]
            try:
                async with self.pool.acquire() as conn:
                    await store.record_statuses(conn, rows)
            except Exception as error:
                if metrics.db_unreachable(error):
                    raise
                await self._one_by_one(len(rows))
            else:
                del self._statuses[: len(rows)]

    async def _one_by_one(self, count: int) -> None:
        """Write the first ``count`` pending statuses each alone (a failed batch's rows)."""
        for _ in range(count):
            row = self._statuses[0]
            try:
                await store.record_status(self.pool, *row)
            except Exception as error:
                if metrics.db_unreachable(error):
                    raise  # it stays pending, and so do the ones after it
                log.exception("connectivity.status_not_recorded", charge_point_id=row[0])
            del self._statuses[0]  # written, or refused for good: never written twice
