"""Operator endpoint: give a charger another chance at an action it was found not to take.

What the CSMS learned shows on ``GET /api/v1/chargers/{id}`` (``unsupported_actions``,
``charging_rate_units``). A charger that boots other firmware is given a fresh
chance by itself; this is for the operator who changed it otherwise (e.g. enabled
its cost display) and wants the CSMS to try again now.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Response, status

from csms.api.context import Context, Operator
from csms.storage import interop

log = structlog.get_logger(__name__)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["chargers"])

    @router.delete("/chargers/{charge_point_id}/unsupported-actions/{action}", status_code=204)
    async def forget_unsupported_action(
        charge_point_id: str, action: str, context: Context, caller: Operator
    ) -> Response:
        """Send ``action`` to the charger again (it will be learned again if still refused)."""
        if not await interop.forget_unsupported(context.pool, charge_point_id, action):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"{charge_point_id!r} is not known to refuse {action!r}",
            )
        log.info("interop.action_forgotten", charge_point_id=charge_point_id, action=action,
                 actor=caller.name)  # fmt: skip
        return Response(status_code=204)

    return router
