"""Build the FastAPI application and run it inside the CSMS's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from csms import __version__
from csms.api import commands, resources
from csms.api.context import ApiContext
from csms.api.protocol_routes import ROUTERS as PROTOCOL_ROUTERS

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


def create_app(context: ApiContext, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The operator API; ``extra_routers`` come from the services (csms.services)."""
    app = FastAPI(
        title="CSMS operator API",
        version=__version__,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # the docs page loads assets from a CDN; the JSON document is served
        redoc_url=None,
    )
    app.state.context = context
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.include_router(resources.router)
    app.include_router(commands.router)
    for protocol_router in PROTOCOL_ROUTERS:
        app.include_router(protocol_router)
    for extra in extra_routers:
        app.include_router(extra)
    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the CSMS's loop; the CSMS, not uvicorn, owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
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
