"""The operator API's front door: key check, body limit and timeouts before any endpoint runs.

The API shares its event loop with the charger sockets, so what an anonymous
client can make it do must stay small. FastAPI reads and parses a request's
body *before* it resolves the endpoint's dependencies (where the API key is
checked), so without this layer anyone who reaches the port could make the
loop buffer and parse a body of any size. Here, as plain ASGI in front of the
application:

1. a route that needs a key (its dependencies include :func:`get_caller`)
   gets 401 before a byte of the body is read, and the key found is handed on
   (``scope["state"]["api_caller"]``) so the endpoint does not look it up again;
2. a body above ``max_body`` bytes gets 413 (from ``Content-Length`` at once,
   or as soon as a chunked body passes the limit); a body that does not arrive
   within ``body_timeout`` seconds gets 408 (slow-loris);
3. an endpoint that has not started its answer after ``request_timeout``
   seconds is cancelled and answered 503. A started answer (the event stream)
   runs on.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

Authenticate = Callable[[str], Awaitable[Any | None]]  # key -> caller, None if unknown
CALLER_STATE_KEY = "api_caller"

_BEARER_HINT = "send an API key as 'Authorization: Bearer <key>'"


def _depends_on(dependant: Dependant, target: Callable[..., Any]) -> bool:
    return any(dep.call is target or _depends_on(dep, target) for dep in dependant.dependencies)


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterable[Any]:
    """Every endpoint with its full path (FastAPI >= 0.16x nests included routers)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied flat
        return list(routes)
    return list(iter_route_contexts(list(routes)))


@dataclass(frozen=True, slots=True)
class _KeyedRoute:
    pattern: re.Pattern[str]
    methods: frozenset[str]


class FrontDoor:
    """ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Iterable[BaseRoute]],
        key_dependency: Callable[..., Any],
        authenticate: Authenticate,
        max_body: int,
        body_timeout: float,
        request_timeout: float,
    ) -> None:
        self.app = app
        self._routes = routes
        self._key_dependency = key_dependency
        self._authenticate = authenticate
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.request_timeout = request_timeout
        self._keyed: list[_KeyedRoute] | None = None  # built at the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._route_needs_key(scope):
            refusal = await self._check_key(scope)
            if refusal is not None:
                await _answer(send, 401, refusal, {"www-authenticate": "Bearer"})
                return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _answer(send, 413, self._too_large())
            return
        if declared is not None or _header(scope, b"transfer-encoding") is not None:
            body = await self._read_body(receive, send)
            if body is None:
                return
            receive = _replay(body, receive)
        await self._run(scope, receive, send)

    # -- steps -------------------------------------------------------------------

    def prepare(self) -> None:
        """Find the routes that need a key (FastAPI analyses every route: ~0.3 s of CPU).

        Done at start-up, off the loop (:meth:`csms.api.app.ApiServer.start`), rather
        than at the first request, where it held the chargers' loop that long.
        """
        if self._keyed is None:
            self._keyed = [
                _KeyedRoute(compile_path(route.path)[0], frozenset(route.methods or ()))
                for route in _flat_routes(self._routes())
                if isinstance(getattr(route, "path", None), str)
                and isinstance(getattr(route, "dependant", None), Dependant)
                and _depends_on(route.dependant, self._key_dependency)
            ]

    def _route_needs_key(self, scope: Scope) -> bool:
        """Whether the endpoint this request goes to asks for an API key."""
        if self._keyed is None:
            self.prepare()
        assert self._keyed is not None
        path, method = scope.get("path", ""), scope.get("method", "GET")
        return any(
            route.pattern.match(path) and (not route.methods or method in route.methods)
            for route in self._keyed
        )

    async def _check_key(self, scope: Scope) -> str | None:
        raw = _header(scope, b"authorization")
        scheme, _, key = (raw or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _BEARER_HINT
        caller = await self._authenticate(key.strip())
        if caller is None:
            return "unknown or revoked API key"
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        return None

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once an error answer (408/413) has been sent."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        if message.get("more_body", False):
                            await _discard_rest(receive, _LINGER_BYTES)
                        await _answer(send, 413, self._too_large())
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            log.warning("api.body_timeout", received=size, seconds=self.body_timeout)
            await _answer(
                send, 408, f"the request body did not arrive within {self.body_timeout:g} s"
            )
            return None

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = asyncio.Event()

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        async def run_app() -> None:
            await self.app(scope, receive, send_and_note)

        task = asyncio.create_task(run_app())
        waiter = asyncio.create_task(started.wait())
        try:
            await asyncio.wait(
                {task, waiter}, timeout=self.request_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if not task.done() and not started.is_set():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            if not started.is_set():
                log.warning("api.request_timeout", path=scope.get("path"))
                await _answer(
                    send,
                    503,
                    f"the request took longer than {self.request_timeout:g} s",
                    {"retry-after": "5"},
                )
                return
        await task  # the answer has started (or finished): let it run to its end

    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_body} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect

    return replay


async def _answer(
    send: Send, status: int, error: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


# A body streamed past the limit is read on (and thrown away) up to this many bytes
# before the 413 goes out: closing a socket with unread data resets it, and the client
# would lose the 413 with it. Past this, the connection is closed all the same.
_LINGER_BYTES = 8 * 1024 * 1024


async def _discard_rest(receive: Receive, limit: int) -> None:
    """Read and drop the rest of a request body (at most ``limit`` bytes)."""
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))
