"""The dashboard as a CSMS service: its page, its assets and its JSON, on the API port."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from csms.dashboard import analytics_api, api
from csms.dashboard.assets import asset_router, load_assets


class DashboardService:
    """Serves ``/`` (the operations dashboard) and the endpoints behind it; no background work."""

    name = "dashboard"

    def __init__(self) -> None:
        self._routers = [asset_router(load_assets()), api.router, analytics_api.router]

    def api_routers(self) -> Sequence[APIRouter]:
        return self._routers

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
