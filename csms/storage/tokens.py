"""Id tokens (RFID cards, app tokens, ...) the CSMS authorizes against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.storage import Executor


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id_token: str
    status: str
    expires_at: datetime | None
    group_id: str | None
    group_status: str | None = None  # the status of the group (parent) token, if known


def lookup_sql(id_token: str) -> str:
    """SQL of the row :func:`find` reads for the token ``id_token`` (a parameter), for a
    statement that reads it beside other things (as a subquery; no row: unknown)."""
    return f"""
        SELECT t.id_token, t.status, t.expires_at, t.group_id, g.status AS group_status
        FROM id_tokens t
        LEFT JOIN id_tokens g ON lower(g.id_token) = lower(t.group_id)
        WHERE lower(t.id_token) = lower({id_token})
    """


_FIND = lookup_sql("$1")


def record_of(row: Any) -> TokenRecord | None:
    """The token of a row with :func:`lookup_sql`'s columns (a NULL ``id_token``: none)."""
    if row is None or row["id_token"] is None:
        return None
    return TokenRecord(
        row["id_token"], row["status"], row["expires_at"], row["group_id"], row["group_status"]
    )


async def find(conn: Executor, id_token: str) -> TokenRecord | None:
    """Look a token up case-insensitively (both OCPP versions define it so), with its group's
    status (a blocked group blocks its members)."""
    return record_of(await conn.fetchrow(_FIND, id_token))


async def upsert(
    conn: Executor,
    id_token: str,
    status: str,
    expires_at: datetime | None = None,
    group_id: str | None = None,
) -> None:
    """Add a token or replace its status, expiry and group (matched case-insensitively)."""
    await conn.execute(
        """
        INSERT INTO id_tokens (id_token, status, expires_at, group_id) VALUES ($1, $2, $3, $4)
        ON CONFLICT (lower(id_token)) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            group_id = EXCLUDED.group_id, updated_at = now()
        """,
        id_token,
        status,
        expires_at,
        group_id,
    )


async def all_tokens(conn: Executor) -> list[TokenRecord]:
    rows = await conn.fetch(
        "SELECT id_token, status, expires_at, group_id FROM id_tokens ORDER BY lower(id_token)"
    )
    return [TokenRecord(r["id_token"], r["status"], r["expires_at"], r["group_id"]) for r in rows]


async def delete(conn: Executor, id_token: str) -> bool:
    status = await conn.execute("DELETE FROM id_tokens WHERE lower(id_token) = lower($1)", id_token)
    return bool(status.endswith(" 1"))
