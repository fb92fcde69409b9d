"""``/api/v1/firmware-campaigns``: one firmware to many chargers, with progress per charger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import Field

from csms.api.context import Context, Operator, Reader
from csms.storage import firmware_campaigns
from handlers.commands.models import UpdateFirmware

if TYPE_CHECKING:
    from csms.firmware_campaigns import FirmwareCampaignService


class NewCampaign(UpdateFirmware):
    name: str = Field(default="", max_length=200)
    charger_ids: list[str] | None = Field(
        default=None, description="the chargers to update; omitted: every registered charger"
    )


def build_router(service: FirmwareCampaignService) -> APIRouter:
    router = APIRouter(prefix="/api/v1/firmware-campaigns", tags=["firmware"])

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def create_campaign(
        body: NewCampaign, context: Context, caller: Operator
    ) -> dict[str, Any]:
        if (body.signature is None) != (body.signing_certificate is None):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "a signed update needs both signature and signing_certificate",
            )
        spec = body.model_dump() | {
            "name": body.name or body.location,
            "created_by": caller.name,
        }
        async with context.pool.acquire() as conn, conn.transaction():
            campaign_id = await firmware_campaigns.create(conn, spec, body.charger_ids)
        service.wake()
        [campaign] = await firmware_campaigns.campaigns(context.pool, campaign_id)
        return campaign

    @router.get("")
    async def list_campaigns(context: Context, caller: Reader) -> dict[str, Any]:
        return {"campaigns": await firmware_campaigns.campaigns(context.pool)}

    @router.get("/{campaign_id}")
    async def get_campaign(campaign_id: int, context: Context, caller: Reader) -> dict[str, Any]:
        # One snapshot, so that the counts and the per-charger rows agree.
        async with context.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            found = await firmware_campaigns.campaigns(conn, campaign_id)
            targets = await firmware_campaigns.targets(conn, campaign_id)
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {campaign_id}")
        return found[0] | {"chargers": targets}

    @router.post("/{campaign_id}/cancel")
    async def cancel_campaign(
        campaign_id: int, context: Context, caller: Operator
    ) -> dict[str, Any]:
        """Chargers not sent the update yet will not be; those already updating go on."""
        if not await firmware_campaigns.cancel(context.pool, campaign_id, datetime.now(UTC)):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no running campaign {campaign_id}")
        return (await firmware_campaigns.campaigns(context.pool, campaign_id))[0]

    return router
