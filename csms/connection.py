"""One charger's OCPP-J connection: frames in, handler calls, answers out.

Built on the ``ocpp`` library's ``ChargePoint`` (its ``@on`` route map, its
message classes and JSON schemas), but with the RPC framing rules of the
spec rather than the library's:

* every malformed frame is answered with the CALLERROR the spec names (with
  ``"-1"`` as message id when the id cannot be read), never silently dropped;
* error codes are spelled per version (:mod:`csms.rpc_errors`);
* a CALLRESULT or CALLERROR whose id matches no outstanding call is logged
  and dropped, instead of being queued for the next call to trip over;
* schema validation runs inline (a thread hop per message costs more than the
  validation, which holds the GIL anyway), compiled (:mod:`csms.validation`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, ClassVar

import asyncpg
import ocpp.messages
import structlog
from ocpp.charge_point import (
    ChargePoint,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.central import CentralSystem
from csms.config import Settings
from csms.dedupe import handling, message_key
from csms.events import Protocol, RegistrationStatus
from csms.logs import HANDLING
from csms.message_tally import TALLY
from csms.monitoring import metrics
from csms.poison import screen
from csms.rpc_errors import ErrorCode, RpcError, schema_error, wire_code
from csms.rpc_frames import (
    FRAME_HEAD,
    check_own,
    empty_answer,
    read_frame,
    readable_id,
    storable_raw,
    takes_call_unique_id,
    unset,
)
from csms.rpc_frames import CallErrorReceived as CallErrorReceived  # where callers look
from csms.rpc_frames import InvalidAnswer as InvalidAnswer
from csms.rpc_frames import snake_case_keys as snake_case_keys
from csms.storage import interop
from csms.validation import CALL, CALLRESULT, first_error, warm

ocpp.messages.ASYNC_VALIDATION = False

log = structlog.get_logger(__name__)

# Versions whose validators are compiled (or being compiled) in this process.
_WARMED: set[str] = set()
# A charger answering a CSMS call with these does not take that action at all.
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "NotSupported"})


class OcppConnection(ChargePoint):  # type: ignore[misc]
    """Base of the 1.6 and 2.0.1 handler classes; one instance per live socket."""

    protocol: ClassVar[Protocol]
    known_actions: ClassVar[frozenset[str]]  # every action the version defines

    def __init__(
        self,
        charge_point_id: str,
        websocket: ServerConnection,
        central: CentralSystem,
        settings: Settings,
    ) -> None:
        super().__init__(charge_point_id, websocket, response_timeout=settings.response_timeout)
        self.central = central
        self.settings = settings
        self.websocket = websocket
        self.registration: RegistrationStatus | None = None
        # This socket's fencing token: only the connection holding the charger's
        # presence in Postgres (csms.storage.chargers) may mark it offline.
        self.generation: int | None = None
        self._pending: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._raw_answers: dict[str, str] = {}  # message id -> the answer as it arrived
        # When the charger last spoke (a frame or a pong); monitoring's liveness watchdog
        # reads it, and sets ``offline_reason`` when it gives up on a silent charger.
        self.last_heard = time.monotonic()
        self.offline_reason: str | None = None
        # Set once a BootNotification has been answered: the CSMS asks a charger
        # nothing (csms.interop) before it has its answer.
        self.boot_answered = asyncio.Event()
        self._connection_key = uuid.uuid4().hex  # scopes resends of timestamp-less messages

    # -- receiving ---------------------------------------------------------------

    async def start(self) -> None:
        """Handle frames in arrival order until the socket closes.

        A charger may answer a command and close at once (Reset: answer, then
        reboot) while we are still handling a CALL it sent before. Our answer
        to that CALL then finds the socket closed, but the frames the charger
        sent before closing are still buffered: keep reading them, so that its
        answer completes the pending command instead of being lost.
        """
        if self._ocpp_version not in _WARMED:  # the first connection of its version
            _WARMED.add(self._ocpp_version)
            actions = sorted(self.known_actions)
            asyncio.get_running_loop().run_in_executor(None, warm, self._ocpp_version, actions)
        async for frame in self.websocket:
            try:
                await self.route_message(frame)
            except ConnectionClosed:
                log.info("rpc.answer_not_sent", reason="connection closed")

    async def route_message(self, raw_msg: str | bytes) -> None:
        self.central.seen(self.id)
        self.last_heard = time.monotonic()
        text = raw_msg.decode("utf-8", "replace") if isinstance(raw_msg, bytes) else raw_msg
        if len(text) > self.settings.max_message_size:
            await self._on_oversize(text)
            return
        try:
            frame, checked = read_frame(text)
        except (ValueError, RecursionError):
            await self._send_error("-1", RpcError(ErrorCode.RPC_FRAMEWORK_ERROR, "not valid JSON"))
            return
        if not isinstance(frame, list) or not frame:
            await self._send_error(
                "-1", RpcError(ErrorCode.RPC_FRAMEWORK_ERROR, "an OCPP-J message is a JSON array")
            )
            return
        message_type = frame[0]
        if message_type == 2 and type(message_type) is int:
            await self._on_call_frame(frame, text, checked)
        elif message_type in (3, 4) and type(message_type) is int:
            self._on_response_frame(frame, text, checked)
        elif type(message_type) is int and self.protocol is Protocol.V16:
            # OCPP-J 1.6 section 4.1.3: a message type not in the list is ignored.
            log.warning("rpc.unknown_message_type_ignored", message_type=message_type)
        else:
            error = RpcError(
                ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
                if type(message_type) is int
                else ErrorCode.RPC_FRAMEWORK_ERROR,
                f"unsupported MessageTypeId {message_type!r}",
            )
            await self._send_error(readable_id(frame), error)

    async def _on_call_frame(self, frame: list[Any], text: str, checked: bool = False) -> None:
        message_id = readable_id(frame)
        if len(frame) != 4 or message_id == "-1":
            await self._send_error(
                message_id,
                RpcError(
                    ErrorCode.RPC_FRAMEWORK_ERROR,
                    "a CALL is [2, messageId (string, at most 36 characters), action, payload]",
                ),
            )
            return
        action, payload = frame[2], frame[3]
        if not isinstance(action, str) or not isinstance(payload, dict):
            await self._send_error(
                message_id,
                RpcError(
                    ErrorCode.RPC_FRAMEWORK_ERROR, "action must be a string, payload an object"
                ),
            )
            return
        started = time.perf_counter()
        outcome = "ok"
        handling = HANDLING.set((action, message_id))  # named in every line logged meanwhile
        try:
            await self._handle_call(Call(message_id, action, payload), text, checked)
        except RpcError as error:
            outcome = "call_error"
            log.warning("rpc.call_error_sent", code=error.code.value, reason=error.description)
            await self._send_error(message_id, error)
        finally:
            HANDLING.reset(handling)
            label = metrics.bounded_action(action, self.known_actions)
            TALLY.add(label, outcome, time.perf_counter() - started)  # written once per loop turn

    async def _handle_call(self, msg: Call, text: str | None = None, checked: bool = False) -> None:
        """Validate, handle and answer one CALL (``checked``: its frame was found plain)."""
        handlers = self.route_map.get(msg.action, {})
        if "_on_action" not in handlers:
            if msg.action in self.known_actions:
                raise RpcError(ErrorCode.NOT_SUPPORTED, f"{msg.action} is not supported by a CSMS")
            raise RpcError(ErrorCode.NOT_IMPLEMENTED, f"unknown action {msg.action!r}")
        if (
            msg.action != "BootNotification"
            and self.registration is not RegistrationStatus.ACCEPTED
        ):
            raise RpcError(
                ErrorCode.SECURITY_ERROR,
                f"charger is not accepted (registration: {self.registration}); "
                "send BootNotification first",
            )
        msg.payload, replaced = screen(msg.payload, text, checked)  # poison values (csms.poison)
        if replaced:
            log.warning("rpc.nul_replaced", strings=replaced)
            metrics.VALUES_SANITISED.labels("nul").inc(replaced)
        validate = not handlers.get("_skip_schema_validation", False)
        if validate:
            self._validate(msg)
        handler = handlers["_on_action"]
        kwargs = snake_case_keys(msg.payload)
        if takes_call_unique_id(getattr(handler, "__func__", handler)):  # not the bound method
            kwargs["call_unique_id"] = msg.unique_id
        key = message_key(msg.action, msg.unique_id, msg.payload, self._connection_key)
        try:
            with handling(self.id, key):  # event ids follow from the message (csms.dedupe)
                response = await handler(**kwargs)
        except RpcError:
            raise
        except OCPPError as error:
            raise RpcError.from_ocpp_error(error) from error
        except (asyncpg.DataError, OverflowError) as error:
            # A value the schema allows but a column or a sum cannot hold (an int4
            # beyond 2**31, a date beyond the calendar): the charger's data, not our fault.
            log.warning("rpc.value_not_storable", error=str(error)[:200])
            raise RpcError(
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                f"a value in this message cannot be stored: {str(error)[:150]}",
            ) from error
        except Exception as error:
            log.exception("rpc.handler_failed")
            raise RpcError(
                ErrorCode.INTERNAL_ERROR, "the CSMS could not process this message"
            ) from error
        await self._send(self._answer_frame(msg, response, validate))
        if msg.action == "BootNotification":
            self.boot_answered.set()

    def _answer_frame(self, msg: Call, response: Any, validate: bool) -> str:
        """The CALLRESULT frame of a handler's answer dataclass, schema-checked."""
        if unset(response):  # most answers (meter values, updates, statuses): a constant
            empty = empty_answer(msg.action, self._ocpp_version, validate)
            if empty is not None:
                return f"[3,{json.dumps(msg.unique_id)},{empty}]"
        result = msg.create_call_result(
            snake_to_camel_case(remove_nones(serialize_as_dict(response)))
        )
        if validate:
            invalid = first_error(CALLRESULT, msg.action, self._ocpp_version, result.payload)
            if invalid is not None:
                log.error("rpc.invalid_answer_built", payload=result.payload, error=invalid.message)
                raise RpcError(ErrorCode.INTERNAL_ERROR, "the CSMS built an invalid answer")
        frame: str = result.to_json()
        return frame

    def _validate(self, msg: Call) -> None:
        error = first_error(CALL, msg.action, self._ocpp_version, msg.payload)
        if error is not None:
            raise schema_error(error, self.protocol)

    def _on_response_frame(self, frame: list[Any], text: str, checked: bool = False) -> None:
        message_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
        future = self._pending.get(message_id) if message_id is not None else None
        if message_id is None or future is None or future.done():
            log.warning("rpc.unknown_response_dropped", message_id=message_id)
            return
        raw = storable_raw(text)
        self._raw_answers[message_id] = raw
        try:
            # What a charger answers is as untrusted as what it asks.
            frame, _ = screen(frame, text, checked)
        except RpcError as error:
            log.warning("rpc.invalid_answer", message_id=message_id, reason=error.description)
            future.set_exception(InvalidAnswer(error.description, raw))
            return
        if frame[0] == 3 and len(frame) == 3 and isinstance(frame[2], dict):
            future.set_result(CallResult(message_id, frame[2]))
        elif frame[0] == 4 and len(frame) in (4, 5):
            details = frame[4] if len(frame) == 5 else {}
            future.set_result(CallError(message_id, str(frame[2]), str(frame[3]), details))
        else:
            log.warning("rpc.malformed_response", message_id=message_id)
            future.set_exception(CallErrorReceived("FormatViolation", "malformed response", {}))

    async def _on_oversize(self, text: str) -> None:
        head = FRAME_HEAD.match(text[:256])
        size_error = RpcError(
            ErrorCode.FORMAT_VIOLATION,
            f"message of {len(text)} characters exceeds the limit of "
            f"{self.settings.max_message_size}",
        )
        if head is None:
            await self._send_error("-1", size_error)
            return
        message_type, message_id = int(head[1]), head[2]
        if message_type == 2:
            await self._send_error(message_id, size_error)
            return
        future = self._pending.get(message_id)
        log.warning("rpc.oversize_response_dropped", message_id=message_id, size=len(text))
        if future is not None and not future.done():
            future.set_exception(CallErrorReceived("FormatViolation", size_error.description, {}))

    # -- sending -----------------------------------------------------------------

    async def call(
        self,
        payload: Any,
        suppress: bool = False,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
    ) -> Any:
        """Send a CSMS-initiated CALL and return the charger's answer as a dataclass.

        Raises :class:`CallErrorReceived` for a CALLERROR (unless ``suppress``)
        and :class:`TimeoutError` when the charger does not answer in time.
        """
        action = type(payload).__name__
        message = Call(
            unique_id or str(uuid.uuid4()),
            action,
            remove_nones(snake_to_camel_case(serialize_as_dict(payload))),
        )
        if not skip_schema_validation:
            await check_own(message, self._ocpp_version)
        action_label = metrics.bounded_action(action, self.known_actions)
        # OCPP-J allows one outstanding CALL per direction.
        async with self._call_lock:
            future: asyncio.Future[CallResult | CallError] = (
                asyncio.get_running_loop().create_future()
            )
            self._pending[message.unique_id] = future
            try:
                await self._send(message.to_json())
                response = await asyncio.wait_for(future, self._response_timeout)
            except TimeoutError:
                metrics.MESSAGES.labels("out", action_label, "timeout").inc()
                raise
            except (CallErrorReceived, InvalidAnswer):  # a malformed or oversize answer
                metrics.MESSAGES.labels("out", action_label, "invalid_answer").inc()
                raise
            except (ConnectionError, ConnectionClosed):
                metrics.MESSAGES.labels("out", action_label, "closed").inc()
                raise
            finally:
                self._pending.pop(message.unique_id, None)
                raw = self._raw_answers.pop(message.unique_id, "")
                if future.done() and not future.cancelled():
                    future.exception()  # the send failed after fail_pending: mark it seen
        if isinstance(response, CallError):
            metrics.MESSAGES.labels("out", action_label, "call_error").inc()
            metrics.CALL_ERRORS.labels("received", metrics.bounded_code(response.error_code)).inc()
            if response.error_code in _UNSUPPORTED_CODES:
                await self._note_unsupported(action, response.error_code)
            if suppress:
                return None
            raise CallErrorReceived(
                response.error_code, response.error_description, response.error_details, raw
            )
        response.action = action
        try:
            if not skip_schema_validation:
                await check_own(response, self._ocpp_version)
            answer = getattr(self._call_result, action)(**snake_case_keys(response.payload))
        except (OCPPError, TypeError) as error:
            metrics.MESSAGES.labels("out", action_label, "invalid_answer").inc()
            reason = error.description if isinstance(error, OCPPError) else str(error)
            log.warning("rpc.invalid_answer", action=action, reason=reason)
            raise InvalidAnswer(f"not a valid {action} answer: {reason}", raw) from error
        metrics.MESSAGES.labels("out", action_label, "ok").inc()
        return answer

    async def _note_unsupported(self, action: str, code: str) -> None:
        """Remember, for every node, that this charger does not take ``action``."""
        try:
            if await interop.record_unsupported(
                self.central.pool, self.id, action, interop.CALL_ERROR, code
            ):
                log.warning("rpc.action_unsupported", action=action, code=code)
        except Exception:  # the CALLERROR still reaches the caller
            log.exception("rpc.action_unsupported_not_recorded", action=action)

    async def _send(self, message: str) -> None:
        log.debug("rpc.send", frame=message)
        await self.websocket.send(message)

    async def _send_error(self, message_id: str, error: RpcError) -> None:
        code = wire_code(error.code, self.protocol)
        metrics.bound(metrics.CALL_ERRORS, "sent", code).inc()
        frame = CallError(message_id, code, error.description, error.details)
        await self._send(frame.to_json())

    def fail_pending(self) -> None:
        """Wake every call still waiting on this connection (it has closed)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"connection to {self.id} closed"))
