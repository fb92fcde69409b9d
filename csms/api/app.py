"""Build the FastAPI application and run it inside the CSMS's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from csms import __version__
from csms.api import commands, reference, resources
from csms.api.context import ApiContext, get_caller
from csms.api.frontdoor import FrontDoor
from csms.api.protocol_routes import ROUTERS as PROTOCOL_ROUTERS
from csms.cluster import api as cluster_api
from csms.listen import reuse_port_sockets
from csms.storage import api_keys

OPENAPI_PATH = "/api/v1/openapi.json"


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [f"{_field(tuple(e['loc']))}: {e['msg']}" for e in error.errors()]
    return JSONResponse({"error": "; ".join(problems), "fields": problems}, status_code=422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return JSONResponse(
        {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
    )


async def _unusable_value(request: Request, error: Exception) -> JSONResponse:
    """A value that passed validation but that the database or the calendar cannot hold.

    NUL in a string, an integer beyond int64 (or a column's int4), a date that an
    offset or an interval pushes off the calendar: the caller's input, so 422 with
    what went wrong -- one handler for every endpoint, instead of one check each.
    """
    detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return JSONResponse(
        {"error": f"a parameter has a value that cannot be used: {detail}"}, status_code=422
    )


def create_app(context: ApiContext, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The operator API; ``extra_routers`` come from the services (csms.services)."""
    app = FastAPI(
        title="CSMS operator API",
        version=__version__,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # Swagger UI loads from a CDN: /api/v1/docs is reference.to_html
        redoc_url=None,
    )
    app.state.context = context
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for unusable in (asyncpg.DataError, OverflowError):
        app.add_exception_handler(unusable, _unusable_value)
    app.include_router(resources.router)
    app.include_router(commands.router)
    app.include_router(cluster_api.router)
    for protocol_router in PROTOCOL_ROUTERS:
        app.include_router(protocol_router)
    for extra in extra_routers:
        app.include_router(extra)

    @app.get("/api/v1/docs", include_in_schema=False, response_class=HTMLResponse)
    async def api_docs() -> HTMLResponse:
        """The API reference as a page, rendered from the OpenAPI document (no CDN)."""
        return HTMLResponse(reference.to_html(app.openapi()))

    settings = context.settings
    app.add_middleware(
        FrontDoor,
        routes=lambda: app.router.routes,
        key_dependency=get_caller,
        authenticate=lambda key: api_keys.find_active(context.pool, key),
        max_body=settings.api_max_body_bytes,
        body_timeout=settings.api_body_timeout,
        request_timeout=settings.api_request_timeout,
    )
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the CSMS's loop; the CSMS, not uvicorn, owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        tls: tuple[Path, Path] | None = None,  # (certificate chain, key): HTTPS
        *,
        reuse_port: bool = False,  # --workers: every worker listens on the port
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Longer than the idle timeout of the proxies put in front of an API (60 s:
            # AWS ALB, nginx's default upstream keepalive): with uvicorn's 5 s the CSMS
            # closed idle connections a proxy or a client was about to reuse, and the
            # request on it failed (the demo's client saw ReadError on a loaded machine).
            timeout_keep_alive=75,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.tls = tls is not None
        self._app = app
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        # uvicorn has no SO_REUSEPORT option: the workers of `csms --workers N` share
        # the API port through sockets of our own.
        self._sockets = reuse_port_sockets(host, port) if reuse_port else None

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        await _prepare(self._app)
        self._task = asyncio.create_task(self._server.serve(sockets=self._sockets))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port in use, ...)
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task


async def _prepare(app: FastAPI) -> None:
    """Build the middleware stack and the front door's route table before serving.

    Starlette builds them at the first request, inside the loop the chargers share
    (a stall of ~0.3 s, docs/profiling.md); the route analysis runs in a thread here.
    """
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    while layer is not None and not isinstance(layer, FrontDoor):
        layer = getattr(layer, "app", None)
    if layer is not None:
        await asyncio.to_thread(layer.prepare)
