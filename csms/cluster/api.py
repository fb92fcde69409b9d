"""``GET /api/v1/cluster/nodes``: the live nodes of the cluster."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from csms.api.context import Context, Reader
from csms.storage import nodes

router = APIRouter(prefix="/api/v1/cluster", tags=["cluster"])


@router.get("/nodes")
async def list_nodes(context: Context, caller: Reader) -> dict[str, Any]:
    """Nodes holding a lease, with the chargers connected to each (from presence).

    ``lease_age_s`` is the time since the node last renewed its lease; a node
    is taken for dead ``node_lease_seconds`` after that. ``self`` marks the
    node that answered.
    """
    items = await nodes.live_nodes(context.pool)
    for item in items:
        item["self"] = item["node_id"] == context.settings.node_id
    return {
        "items": items,
        "chargers_connected": sum(i["chargers_connected"] for i in items),
        "lease_seconds": context.settings.node_lease_seconds,
    }
