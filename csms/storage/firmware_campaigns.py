"""Firmware campaigns and their per-charger targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.events import FirmwareStatusChanged
from csms.storage import Executor
from csms.storage.where import Where

# Statuses after which a charger's update is over, one way or the other.
TERMINAL = frozenset(
    {
        "Installed",
        "InstallationFailed",
        "DownloadFailed",
        "InvalidSignature",
        "InstallVerificationFailed",
    }
)
SUCCESS = "Installed"


async def create(conn: Executor, spec: dict[str, Any], charger_ids: list[str] | None) -> int:
    """A campaign for ``charger_ids`` (None: every registered charger); returns its id."""
    campaign_id = int(
        await conn.fetchval(
            """
            INSERT INTO firmware_campaigns (name, location, retrieve_at, install_at, signature,
                                            signing_certificate, retries, retry_interval,
                                            created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
            """,
            spec["name"],
            spec["location"],
            spec["retrieve_at"],
            spec.get("install_at"),
            spec.get("signature"),
            spec.get("signing_certificate"),
            spec.get("retries"),
            spec.get("retry_interval"),
            spec["created_by"],
        )
    )
    await conn.execute(
        """
        INSERT INTO firmware_campaign_targets (campaign_id, charge_point_id)
        SELECT $1, charge_point_id FROM chargers
        WHERE $2::text[] IS NULL OR charge_point_id = ANY($2)
        """,
        campaign_id,
        charger_ids,
    )
    return campaign_id


async def claim(conn: Executor, charge_point_ids: list[str]) -> list[dict[str, Any]]:
    """Unsent targets of running campaigns for these (connected) chargers, marked sent."""
    rows = await conn.fetch(
        """
        UPDATE firmware_campaign_targets t SET sent_at = now(),
               request_id = nextval('command_request_id_seq')
        FROM firmware_campaigns c
        WHERE c.id = t.campaign_id AND c.cancelled_at IS NULL AND t.sent_at IS NULL
          AND t.charge_point_id = ANY($1)
        RETURNING t.campaign_id, t.charge_point_id, t.request_id, c.location, c.retrieve_at,
                  c.install_at, c.signature, c.signing_certificate, c.retries, c.retry_interval
        """,
        charge_point_ids,
    )
    return [dict(r) for r in rows]


async def answered(conn: Executor, campaign_id: int, charge_point_id: str, answer: str) -> None:
    await conn.execute(
        "UPDATE firmware_campaign_targets SET answer = $3 "
        "WHERE campaign_id = $1 AND charge_point_id = $2",
        campaign_id,
        charge_point_id,
        answer,
    )


async def release(conn: Executor, campaign_id: int, charge_point_id: str) -> None:
    """The charger went away before the request left: send it on its next connection."""
    await conn.execute(
        "UPDATE firmware_campaign_targets SET sent_at = NULL, request_id = NULL "
        "WHERE campaign_id = $1 AND charge_point_id = $2",
        campaign_id,
        charge_point_id,
    )


async def record_status(conn: Executor, event: FirmwareStatusChanged) -> None:
    """A firmware status of a campaign target: by request id, or (1.6 UpdateFirmware, no id)
    for the charger's most recently sent target that has none yet finished."""
    await conn.execute(
        """
        UPDATE firmware_campaign_targets SET status = $3, status_at = $4
        WHERE (campaign_id, charge_point_id) = (
            SELECT campaign_id, charge_point_id FROM firmware_campaign_targets
            WHERE charge_point_id = $1 AND sent_at IS NOT NULL
              AND ($2::int IS NULL OR request_id = $2)
              AND (status IS NULL OR status <> ALL($5::text[]))
            ORDER BY sent_at DESC LIMIT 1)
        """,
        event.charge_point_id,
        event.request_id,
        event.status,
        event.occurred_at,
        list(TERMINAL),
    )


async def campaigns(conn: Executor, campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Campaigns, newest first, each with its progress counts."""
    where = Where()  # planned for one campaign or for all, not once for both
    where.add("c.id = {}", campaign_id)
    success, done = where.param(SUCCESS), where.param(list(TERMINAL))
    rows = await conn.fetch(
        f"""
        SELECT c.*, count(t.*) AS targets,
               count(t.sent_at) AS sent,
               count(*) FILTER (WHERE t.answer = 'Accepted') AS accepted,
               count(*) FILTER (WHERE t.status = {success}) AS installed,
               count(*) FILTER (WHERE t.status = ANY({done}::text[])
                                 OR (t.answer IS NOT NULL AND t.answer <> 'Accepted')) AS done
        FROM firmware_campaigns c LEFT JOIN firmware_campaign_targets t ON t.campaign_id = c.id
        WHERE {where.sql}
        GROUP BY c.id ORDER BY c.id DESC
        """,
        *where.args,
    )
    result = []
    for row in rows:
        item = dict(row)
        item["finished"] = item["cancelled_at"] is not None or item["done"] == item["targets"]
        result.append(item)
    return result


async def targets(conn: Executor, campaign_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT charge_point_id, request_id, sent_at, answer, status, status_at
        FROM firmware_campaign_targets WHERE campaign_id = $1 ORDER BY charge_point_id
        """,
        campaign_id,
    )
    return [dict(r) for r in rows]


async def cancel(conn: Executor, campaign_id: int, at: datetime) -> bool:
    status = await conn.execute(
        "UPDATE firmware_campaigns SET cancelled_at = $2 WHERE id = $1 AND cancelled_at IS NULL",
        campaign_id,
        at,
    )
    return status.endswith(" 1")
