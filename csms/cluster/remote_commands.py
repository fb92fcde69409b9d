"""Commands for chargers connected to another node, through Postgres.

The caller inserts a ``cluster_commands`` row (the call as JSON, the target
node, a deadline) and NOTIFYs the target node's channel with the row id, in
one transaction. The target claims the row with one conditional UPDATE
(``pending`` -> ``sending``, only before the deadline), so a command is
delivered at most once whatever races; it sends the call on its local socket,
stores the outcome (answer, CALLERROR, timeout, not connected...) and
NOTIFYs the caller's channel. The caller raises what a local call would.

NOTIFY is only a wake-up: each node LISTENs on a dedicated connection
(reconnected when it drops) and also polls, so a lost notification delays a
command by at most the poll interval, never loses it. Payloads live in the
row, because NOTIFY payloads are limited to 8000 bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
from typing import Any

import asyncpg
import ocpp.exceptions
import structlog
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, validate_payload
from websockets.exceptions import ConnectionClosed

from csms.cluster import codec
from csms.config import Settings
from csms.connection import CallErrorReceived, InvalidAnswer
from csms.events import Protocol
from csms.router import ChargerNotConnected, ConnectionRegistry, WrongProtocolVersion
from csms.storage import Executor, chargers
from csms.storage import cluster_commands as store

log = structlog.get_logger(__name__)

FORWARD_SLACK_S = 2.0  # on top of response_timeout: claiming and answering across nodes
ANSWER_GRACE_S = 1.0  # the caller waits this long past the deadline for the target's word
POLL_S = 1.0  # how often both sides look at the table without a notification
_PRUNE_EVERY_S = 60.0
_NOTIFY_MAX_BYTES = 7900  # Postgres refuses NOTIFY payloads of 8000 bytes or more
_EARLY_MAX = 10_000
_OCPP_VERSIONS = {Protocol.V16: "1.6", Protocol.V201: "2.0.1"}


def channel_of(node_id: str) -> str:
    """The LISTEN channel of a node (an identifier of at most 63 bytes)."""
    return "csms_node_" + hashlib.sha256(node_id.encode()).hexdigest()[:32]


class CommandForwarder:
    """Both sides of forwarding: :meth:`call` as caller, deliveries as target."""

    def __init__(
        self, pool: asyncpg.Pool, dsn: str, settings: Settings, registry: ConnectionRegistry
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.registry = registry
        self.node_id = settings.node_id
        self.channel = channel_of(self.node_id)
        self._listener: asyncpg.Connection | None = None
        self._waiters: dict[int, asyncio.Event] = {}
        # Outcomes notified to this node and not yet taken by their caller (a None
        # value: read the row). Bounded: a caller that gave up never takes its own.
        self._early: collections.OrderedDict[int, store.Outcome | None] = collections.OrderedDict()
        self._delivering: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- caller side ---------------------------------------------------------

    async def locate(self, charge_point_id: str) -> chargers.Presence | None:
        return await chargers.presence_of(self.pool, charge_point_id)

    async def call(self, charge_point_id: str, holder: chargers.Presence, payload: Any) -> Any:
        """Have ``holder.node_id`` send ``payload``; return or raise what it got."""
        await _validate(payload, Protocol(holder.protocol))
        budget = self.settings.response_timeout + FORWARD_SLACK_S
        command_id = await store.insert(
            self.pool,
            caller_node=self.node_id,
            target_node=holder.node_id,
            charge_point_id=charge_point_id,
            generation=holder.generation,
            payload=codec.dumps(payload),
            timeout_s=budget,
            notify_channel=channel_of(holder.node_id),
        )
        woken = self._waiters[command_id] = asyncio.Event()
        if command_id in self._early:  # answered before we got here (a busy loop)
            woken.set()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + budget + ANSWER_GRACE_S
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        woken.wait(), max(0.0, min(give_up - loop.time(), POLL_S))
                    )
                woken.clear()
                # The outcome came with the notification, or is read from the row
                # (a large answer, a reconnected listener, or the polling fallback).
                outcome = self._early.pop(command_id, None) or await store.outcome(
                    self.pool, command_id
                )
                if outcome is not None:
                    return _result(charge_point_id, outcome)
                if loop.time() >= give_up:
                    break
        except asyncio.CancelledError:
            self._spawn(self._withdraw(command_id))
            raise
        finally:
            self._waiters.pop(command_id, None)
        if not await self._withdraw(command_id):  # claimed: it may have just finished
            outcome = await store.outcome(self.pool, command_id)
            if outcome is not None:
                return _result(charge_point_id, outcome)
        raise TimeoutError(f"{charge_point_id} (on node {holder.node_id}) did not answer in time")

    async def _withdraw(self, command_id: int) -> bool:
        """Make sure a command the caller gave up on is never delivered later.

        False when a node had already claimed it (it is, or was, being sent).
        """
        try:
            return await store.expire(self.pool, command_id)
        except Exception:
            log.exception("cluster.command_not_withdrawn", command_id=command_id)
            return False

    # -- target side ---------------------------------------------------------

    async def _deliver(self, command_id: int) -> None:
        if command_id in self._delivering:
            return
        self._delivering.add(command_id)
        try:
            claimed = await store.claim(self.pool, command_id, self.node_id)
            if claimed is None:
                return  # already taken, withdrawn, or past its deadline
            state, response, error = await self._send(claimed)
            result = store.Outcome(state, response, None if error is None else _json(error))
            await store.finish(
                self.pool,
                command_id,
                result,
                channel_of(claimed.caller_node),
                _answer_notice(command_id, result),
            )
        except Exception:
            log.exception("cluster.delivery_failed", command_id=command_id)
        finally:
            self._delivering.discard(command_id)

    async def _send(self, claimed: store.Claimed) -> tuple[str, str | None, dict[str, Any] | None]:
        """Send a claimed command on the local socket; (state, response JSON, error)."""
        cp = claimed.charge_point_id
        with structlog.contextvars.bound_contextvars(charge_point_id=cp, command_id=claimed.id):
            connection = self.registry.get(cp)
            if connection is None:
                return (
                    "not_connected",
                    None,
                    {"message": f"{cp} is not connected to {self.node_id}"},
                )
            try:
                payload = codec.loads(claimed.payload)
                if payload.__class__.__module__ != f"ocpp.{_module_of(connection.protocol)}.call":
                    speaks = {"message": f"{cp} now speaks {connection.protocol.value}"}
                    return "wrong_protocol", None, speaks
                answer = await asyncio.wait_for(connection.call(payload), claimed.seconds_left)
            except Exception as error:
                state, details = _failure(error)
                return state, None, details
            return "answered", codec.dumps(answer), None

    # -- listening, polling, pruning ------------------------------------------

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        """``c:<id>``: a command for this node; ``a:<id>[:<outcome>]``: an answer."""
        kind, _, rest = str(payload).partition(":")
        raw_id, _, raw_outcome = rest.partition(":")
        if not raw_id.isdigit():
            return
        command_id = int(raw_id)
        if kind == "c":
            self._spawn(self._deliver(command_id))
        elif kind == "a":
            self._early[command_id] = _parse_outcome(raw_outcome)
            while len(self._early) > _EARLY_MAX:
                self._early.popitem(last=False)
            if command_id in self._waiters:
                self._waiters[command_id].set()

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(self.channel, self._on_notification)
        log.info("cluster.listening", channel=self.channel)
        for waiter in self._waiters.values():  # answers may have come while deaf
            waiter.set()

    async def start(self) -> None:
        await self._listen()

    async def run(self) -> None:
        """Keep the LISTEN connection up; poll for missed commands; prune old rows."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + _PRUNE_EVERY_S
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self._listen()
                for command_id in await store.pending_for(self.pool, self.node_id):
                    self._spawn(self._deliver(command_id))
                if loop.time() >= next_prune:
                    next_prune = loop.time() + _PRUNE_EVERY_S
                    pruned = await store.prune(
                        self.pool, self.settings.cluster_command_retention_hours
                    )
                    if pruned:
                        log.info("cluster.commands_pruned", rows=pruned)
            except Exception:
                log.exception("cluster.command_poll_failed")

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None


async def abandon_commands(conn: Executor, target_nodes: list[str]) -> int:
    """Answer the callers of commands addressed to nodes that are gone (dead or leaving).

    A caller then raises at once (ChargerNotConnected for a command never sent,
    which the router follows to the charger's new node) instead of waiting for its
    deadline. Run inside the transaction that removes the nodes' rows.
    """
    abandoned = await store.abandon(conn, target_nodes)
    for command_id, caller, outcome in abandoned:
        notice = _answer_notice(command_id, outcome)
        await conn.execute("SELECT pg_notify($1, $2)", channel_of(caller), notice)
    return len(abandoned)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _answer_notice(command_id: int, result: store.Outcome) -> str:
    """``a:<id>:<outcome JSON>``, or ``a:<id>`` when that would not fit in a NOTIFY."""
    notice = f"a:{command_id}:" + _json(
        {"state": result.state, "response": result.response, "error": result.error}
    )
    return notice if len(notice.encode()) <= _NOTIFY_MAX_BYTES else f"a:{command_id}"


def _parse_outcome(raw: str) -> store.Outcome | None:
    try:
        data = json.loads(raw) if raw else None
        return (
            None if data is None else store.Outcome(data["state"], data["response"], data["error"])
        )
    except (ValueError, KeyError, TypeError):
        return None  # read the row instead


def _failure(error: Exception) -> tuple[str, dict[str, Any] | None]:
    """A local call's exception as the (state, error) a forwarded command stores."""
    if isinstance(error, TimeoutError):
        return "timeout", None
    if isinstance(error, CallErrorReceived):
        return "call_error", {
            "code": error.code,
            "description": error.description,
            "details": error.details,
            "raw": error.raw,  # the frame as it arrived, for the caller's audit row
        }
    if isinstance(error, InvalidAnswer):  # 502 with the raw answer on the caller's node
        return "failed", {"invalid_answer": error.reason, "raw": error.raw}
    if isinstance(error, ocpp.exceptions.OCPPError):
        return "ocpp_error", {
            "class": type(error).__name__,
            "description": error.description,
            "details": error.details,
        }
    if isinstance(error, ConnectionError | ConnectionClosed):
        return "closed", None
    log.error("cluster.forwarded_call_failed", error=repr(error))
    return "failed", {"message": repr(error)}


def _module_of(protocol: Protocol) -> str:
    return "v16" if protocol is Protocol.V16 else "v201"


async def _validate(payload: Any, protocol: Protocol) -> None:
    """Refuse, as a local call would, a request that breaks the schema (OCPPError)."""
    message = Call(
        "forwarded",
        type(payload).__name__,
        remove_nones(snake_to_camel_case(serialize_as_dict(payload))),
    )
    await validate_payload(message, _OCPP_VERSIONS[protocol])


def _result(charge_point_id: str, outcome: store.Outcome) -> Any:
    """The answer, or the exception a local call would have raised."""
    error: dict[str, Any] = json.loads(outcome.error) if outcome.error else {}
    state = outcome.state
    if state == "answered" and outcome.response is not None:
        return codec.loads(outcome.response)
    if state == "call_error":
        raise CallErrorReceived(
            error["code"], error["description"], error.get("details"), error.get("raw", "")
        )
    if state == "failed" and "invalid_answer" in error:
        raise InvalidAnswer(str(error["invalid_answer"]), str(error.get("raw", "")))
    if state == "ocpp_error":
        cls = getattr(ocpp.exceptions, str(error.get("class")), ocpp.exceptions.OCPPError)
        if not (isinstance(cls, type) and issubclass(cls, ocpp.exceptions.OCPPError)):
            cls = ocpp.exceptions.OCPPError
        raise cls(description=error.get("description"), details=error.get("details"))
    if state == "not_connected":
        raise ChargerNotConnected(f"charger {charge_point_id!r} is not connected")
    if state == "wrong_protocol":
        raise WrongProtocolVersion(error.get("message", charge_point_id))
    if state == "closed":
        raise ConnectionError(f"connection to {charge_point_id} closed")
    if state in ("timeout", "expired"):
        raise TimeoutError(f"{charge_point_id} did not answer in time")
    raise RuntimeError(f"forwarded command failed on its node: {error.get('message', state)}")
