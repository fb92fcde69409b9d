"""Version-neutral charger base: connection, CALL sending, transaction queue, status.

:class:`Charger` is combined with ``ocpp.v16.ChargePoint`` / ``ocpp.v201.ChargePoint``
in :mod:`charge_point_sim.v16` / :mod:`charge_point_sim.v201`, which supply the
frames (``_boot``, ``_send_status``, ``_tx_*``...) and the ``@on`` handlers.

Two rules of the ``ocpp`` library shape this module:

* ``@on`` handlers run inside the receive loop, so a handler must never await a
  CALL of its own (the response would never be read). Handlers therefore
  :meth:`defer` follow-up work, which runs right after the CALLRESULT is sent.
* ``ChargePoint.call`` waits up to ``response_timeout`` even if the socket
  died, so :meth:`send` races every call against the connection's loss.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

from ocpp.routing import on as _ocpp_on
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from charge_point_sim.clock import SimClock
from charge_point_sim.config import (
    RATE_UNIT_KEY,
    KeyStore,
    default_keys,
    rate_units_of,
    v16_rate_units,
)
from charge_point_sim.model import Connector, PendingReset, QueuedTx, Sample, Session
from charge_point_sim.profiles import ProfileStack
from charge_point_sim.stats import Stats

log = logging.getLogger("charge_point_sim")


F = TypeVar("F", bound=Callable[..., Any])


def handles(action: str) -> Callable[[F], F]:
    """Typed wrapper around ``ocpp.routing.on`` (the library is untyped)."""
    return cast(Callable[[F], F], _ocpp_on(action))


class NotConnected(Exception):
    """The charger is offline (or went offline while waiting for a response)."""


class CallFailed(Exception):
    """The CSMS answered with a CALLERROR or did not answer in time."""


@dataclass
class ChargerConfig:
    """Static settings of one simulated charger."""

    charger_id: str
    url: str = "ws://127.0.0.1:9000/ocpp"
    connectors: int = 2
    password: str | None = None
    max_power_w: float = 22_000.0
    heartbeat_interval: int = 300
    meter_interval: int = 60
    call_timeout: float = 10.0
    reconnect_base: float = 0.5
    reconnect_max: float = 30.0
    vendor: str = "OpenCSMS"
    model: str = "csms-sim"
    # Units its charging schedules take: "A", "W" or "A,W" (1.6
    # ChargingScheduleAllowedChargingRateUnit / 2.0.1 SmartChargingCtrlr.RateUnit);
    # a profile in another unit is Rejected, as real firmware does.
    rate_units: str = "A,W"
    # 2.0.1: it shows a running cost (TariffCostCtrlr in its device model) and takes
    # CostUpdated; without, it answers CostUpdated with CALLERROR NotImplemented.
    cost_updates: bool = False


class Charger:
    """Behaviour shared by the 1.6 and 2.0.1 chargers (see module docstring)."""

    subprotocol: ClassVar[str] = ""
    # Provided by ocpp's ChargePoint, which follows this class in the concrete
    # classes' MRO (``class V16Charger(V16Handlers, ocpp.v16.ChargePoint)``).
    _connection: Any
    _response_queue: Any
    call: Any
    start: Any

    def __init__(self, cfg: ChargerConfig, clock: SimClock, stats: Stats, seed: int = 0) -> None:
        self.cfg = cfg
        self.clock = clock
        self.stats = stats
        self.rng = random.Random(seed)
        self.keys = KeyStore(
            default_keys(cfg.connectors, cfg.heartbeat_interval, cfg.meter_interval)
        )
        self.keys.force(RATE_UNIT_KEY, v16_rate_units(cfg.rate_units))
        self.profiles = ProfileStack()
        self.connectors = {
            i: Connector(id=i, energy_wh=float(self.rng.randint(0, 5_000_000)))
            for i in range(1, cfg.connectors + 1)
        }
        self.local_list: dict[str, str] = {}
        self.local_list_version = 0
        self.auth_cache: dict[str, str] = {}
        self.pending_reset: PendingReset | None = None
        self.tx_queue: deque[QueuedTx] = deque()
        self.online = False
        self.booted = False
        self.boot_reason = "PowerUp"
        self.firmware_status = "Idle"
        self.upload_status = "Idle"
        self._session_counter = 0
        self._deferred: list[Callable[[], Awaitable[None]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_wakeup = asyncio.Event()
        self._link_lost = asyncio.Event()
        self._drop = asyncio.Event()
        self._stopping = False
        self.reported: dict[int, str] = {}
        # Called whenever an EV's draw may have changed (after every step of a session):
        # a benchmark checks the summed current at every change, not only at samples.
        self.on_draw: Callable[[], object] | None = None

    # ------------------------------------------------------ ocpp library glue
    async def _ocpp_call(self, payload: Any) -> Any:
        return await self.call(payload, suppress=False)

    async def _read_frames(self) -> None:
        await self.start()

    async def route_message(self, raw_msg: str) -> None:
        """Route one frame (ocpp's ChargePoint), then run follow-ups deferred by the handler."""
        self.count_incoming(raw_msg)
        await cast(Any, super()).route_message(raw_msg)
        self._run_deferred()

    # ----------------------------------------------------------- version hooks

    async def _boot(self) -> tuple[str, int]:
        raise NotImplementedError

    async def _send_status(self, conn: Connector) -> None:
        raise NotImplementedError

    async def _heartbeat(self) -> None:
        raise NotImplementedError

    async def _authorize(self, id_tag: str) -> str:
        """Authorize with the CSMS; returns the idTagInfo / idTokenInfo status."""
        raise NotImplementedError

    async def send_meter_values(self, conn: Connector) -> None:
        """A MeterValues outside the transaction queue (TriggerMessage)."""
        raise NotImplementedError

    def _tx_started(self, s: Session, sample: Sample, trigger: str) -> QueuedTx:
        raise NotImplementedError

    def _tx_meter(self, s: Session, sample: Sample) -> QueuedTx:
        raise NotImplementedError

    def _tx_ended(self, s: Session, sample: Sample) -> QueuedTx:
        raise NotImplementedError

    # ------------------------------------------------------------ task helpers
    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Start a background task owned by this charger (cancelled on shutdown)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s: task failed: %r", self.cfg.charger_id, task.exception())
            self.stats.record_error("task:" + type(task.exception()).__name__)

    def defer(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run ``fn`` after the current CSMS call has been answered."""
        self._deferred.append(fn)

    def rate_units(self) -> frozenset[str]:
        """The units its charging schedules take (from its configuration key)."""
        key = self.keys.get(RATE_UNIT_KEY)
        return rate_units_of(key.value) if key is not None else frozenset({"A"})

    def count_incoming(self, raw: str) -> None:
        """Count CSMS-initiated CALLs per action for the summary."""
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            msg = json.loads(raw)
            if msg[0] == 2:
                self.stats.received[str(msg[2])] += 1

    def _run_deferred(self) -> None:
        pending, self._deferred = self._deferred, []
        for fn in pending:
            self.spawn(fn())

    # ---------------------------------------------------------------- sending
    async def send(self, payload: Any) -> Any:
        """Send a CALL; returns the CALLRESULT. Raises NotConnected / CallFailed."""
        if not self.online:
            raise NotConnected()
        action = type(payload).__name__
        lost = self._link_lost
        call = asyncio.ensure_future(self._ocpp_call(payload))
        waiter = asyncio.ensure_future(lost.wait())
        started = time.monotonic()
        try:
            await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The caller went away (its link was lost, the charger stops): the call
            # goes with it. Left running it would hold the ocpp call lock, waiting on
            # the old link's response queue for the whole response timeout, and
            # every call of the next connection would queue behind it.
            call.cancel()
            raise
        finally:
            waiter.cancel()
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            self.stats.record_error("lost-in-flight:" + action)
            raise NotConnected()
        exc = call.exception()
        if exc is None:
            self.stats.record_call(action, time.monotonic() - started)
            return call.result()
        if isinstance(exc, TimeoutError):
            self.stats.record_error("timeout:" + action)
            raise CallFailed(f"{action}: timeout")
        if isinstance(exc, ConnectionClosed):
            self.stats.record_error("closed:" + action)
            raise NotConnected()
        code = getattr(exc, "code", type(exc).__name__)
        self.stats.record_call_error(action, str(code))
        raise CallFailed(f"{action}: {code}") from exc

    async def try_send(self, payload: Any) -> Any:
        """:meth:`send` for fire-and-forget messages; None if it failed."""
        try:
            return await self.send(payload)
        except (NotConnected, CallFailed):
            return None

    def enqueue_tx(self, item: QueuedTx) -> None:
        """Queue a transaction message; delivered in order when online."""
        self.tx_queue.append(item)
        self._tx_wakeup.set()

    async def _tx_sender(self) -> None:
        """Deliver queued transaction messages strictly in order, across reconnects."""
        while True:
            if not self.tx_queue or not self.online or not self.booted:
                self._tx_wakeup.clear()
                await self._tx_wakeup.wait()
                continue
            item = self.tx_queue[0]
            payload = item.build(item.offline)
            result = None
            if payload is not None:
                try:
                    result = await self.send(payload)
                except NotConnected:
                    continue  # stays at the head of the queue
                except CallFailed:
                    pass  # the CSMS refused it; retrying would not help
            self.tx_queue.popleft()
            if item.on_result is not None:
                item.on_result(result)

    # ------------------------------------------------------------- connection
    def _headers(self) -> dict[str, str]:
        if self.cfg.password is None:
            return {}
        token = base64.b64encode(f"{self.cfg.charger_id}:{self.cfg.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set, reconnecting with back-off + jitter."""
        self.spawn(self._tx_sender())
        attempt = 0
        while not stop.is_set():
            # Read at every attempt: a charger sent elsewhere (another CSMS node behind a
            # load balancer, a changed URL) reconnects there.
            uri = f"{self.cfg.url.rstrip('/')}/{self.cfg.charger_id}"
            try:
                async with connect(
                    uri,
                    subprotocols=[Subprotocol(self.subprotocol)],
                    additional_headers=self._headers(),
                    open_timeout=10,
                    ping_interval=None,
                    max_size=2**22,
                ) as ws:
                    attempt = 0
                    await self._serve(ws, stop)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
                self.stats.record_error("connect:" + type(exc).__name__)
            if stop.is_set():
                break
            delay = min(self.cfg.reconnect_max, self.cfg.reconnect_base * 2**attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * self.rng.uniform(0.5, 1.0))

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        if ws.subprotocol != self.subprotocol:
            self.stats.record_error("subprotocol")
            return
        self._connection = ws
        self._response_queue = asyncio.Queue()
        self._link_lost = asyncio.Event()
        self._drop.clear()
        self.online = True
        self.stats.chargers_online += 1
        reader = asyncio.ensure_future(self._read_frames())
        session = asyncio.ensure_future(self._connected())
        stopper = asyncio.ensure_future(stop.wait())
        dropper = asyncio.ensure_future(self._drop.wait())
        try:
            await asyncio.wait({reader, stopper, dropper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.online = False
            self.stats.chargers_online -= 1
            self._link_lost.set()
            for task in (reader, session, stopper, dropper):
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(reader, session, return_exceptions=True)
            await ws.close()

    async def _connected(self) -> None:
        """After (re)connecting: boot if needed, report statuses, heartbeat forever."""
        if not self.booted:
            while True:
                try:
                    status, interval = await self._boot()
                except CallFailed:
                    status, interval = "Rejected", 0
                if status == "Accepted":
                    if interval > 0:
                        self.keys.force("HeartbeatInterval", str(interval))
                    self.booted = True
                    self.boot_reason = "PowerUp"
                    break
                await self.clock.sleep(interval if interval > 0 else 30)
        self.reported.clear()
        for conn in self.connectors.values():
            await self.try_status(conn)
        self._tx_wakeup.set()
        while True:
            await self.clock.sleep(max(1, self.keys.get_int("HeartbeatInterval", 300)))
            await self._heartbeat()

    def drop_connection(self) -> None:
        """Fault injection: close the socket; the charger reconnects by itself."""
        self._drop.set()

    # ----------------------------------------------------------------- status
    async def set_status(self, conn: Connector, status: str, error_code: str = "NoError") -> None:
        """Change a connector's status and notify the CSMS if it changed."""
        if (conn.status, conn.error_code) == (status, error_code):
            return
        conn.status, conn.error_code = status, error_code
        await self.try_status(conn)

    async def try_status(self, conn: Connector) -> None:
        """Send the connector's current status (dropped while offline, per spec)."""
        if self.online:
            with contextlib.suppress(NotConnected, CallFailed):
                await self._send_status(conn)
