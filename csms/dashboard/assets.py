"""The dashboard's page and static files, served from the package (no CDN at run time).

``/`` is the single page; ``/dashboard/<file>`` its scripts, styles and the
vendored chart library. Files are read once, at start-up, from the package's
``static`` folder, and only those files are ever served (no path is joined
from the URL).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, Response, status

ASSET_PREFIX = "/dashboard"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            files |= _walk(entry, f"{name}/")
        elif any(entry.name.endswith(suffix) for suffix in _TYPES):
            files[name] = entry.read_bytes()
    return files


def load_assets() -> dict[str, bytes]:
    """Every servable file under ``csms/dashboard/static``, by its path relative to it."""
    return _walk(resources.files("csms.dashboard").joinpath("static"))


def _content_type(name: str) -> str:
    return next(t for suffix, t in _TYPES.items() if name.endswith(suffix))


def asset_router(files: dict[str, bytes]) -> APIRouter:
    """``/`` and ``/dashboard/{path}`` over ``files`` (404 for anything else)."""
    router = APIRouter(include_in_schema=False)
    index = files["index.html"]
    # The page itself is never cached (it names the assets); assets may be cached
    # for a short while, which keeps an operator's reloads cheap.
    page_headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    @router.get("/")
    async def page() -> Response:
        return Response(index, media_type=_content_type("index.html"), headers=page_headers)

    @router.get(ASSET_PREFIX + "/{path:path}")
    async def asset(path: str) -> Response:
        body = files.get(path)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard file {path!r}")
        return Response(
            body,
            media_type=_content_type(path),
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    return router
