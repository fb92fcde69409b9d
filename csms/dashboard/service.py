"""The dashboard as a CSMS service: its page, its assets and its JSON, on the API port.

In the background it rolls ended sessions up into quarter-hour slots for the
analytics (:mod:`csms.dashboard.rollup`): once per cluster, on the node that
holds the ``dashboard.rollup`` lease (every node serves the dashboard).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from fastapi import APIRouter

from csms.cluster.leases import Lease, run_while_leader
from csms.dashboard import analytics_api, api
from csms.dashboard.assets import asset_router, load_assets
from csms.dashboard.rollup import roll_up

if TYPE_CHECKING:  # csms.services imports this module
    from csms.services import ServiceContext

log = structlog.get_logger(__name__)

ROLLUP_INTERVAL_S = 30.0  # between rollups when there is nothing left to do
ROLLUP_BATCH = 500  # sessions per transaction


class DashboardService:
    """Serves ``/`` (the operations dashboard) and the endpoints behind it; rolls up sessions."""

    name = "dashboard"

    def __init__(self, context: ServiceContext, rollup_interval: float = ROLLUP_INTERVAL_S):
        self._context = context
        self._interval = rollup_interval
        self._routers = [asset_router(load_assets()), api.router, analytics_api.router]
        self._task: asyncio.Task[None] | None = None

    def api_routers(self) -> Sequence[APIRouter]:
        return self._routers

    async def start(self) -> None:
        self._task = asyncio.create_task(
            run_while_leader(self._context.leases, "dashboard.rollup", self._roll_up_forever)
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _roll_up_forever(self, lease: Lease) -> None:
        while True:
            try:
                async with self._context.pool.acquire() as conn:
                    done = await roll_up(conn, ROLLUP_BATCH)
                if done:
                    log.debug("dashboard.sessions_rolled_up", sessions=done)
                    await asyncio.sleep(0)  # more may be waiting: go on, but let others run
                    continue
            except Exception:  # the next round retries; analytics read raw samples meanwhile
                log.exception("dashboard.rollup_failed")
            await asyncio.sleep(self._interval)
