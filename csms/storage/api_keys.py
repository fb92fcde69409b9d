"""Operator API keys, stored as SHA-256 hashes of 256-bit random keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from csms.storage import Executor

KEY_PREFIX = "csms_"
ROLES = ("operator", "read-only")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    role: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new secret; shown once, stored only as its hash."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create(conn: Executor, name: str, role: str) -> tuple[ApiKey, str]:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    key = new_key()
    row = await conn.fetchrow(
        """
        INSERT INTO api_keys (name, role, key_hash, key_prefix) VALUES ($1, $2, $3, $4)
        RETURNING id, name, role, key_prefix, created_at, revoked_at
        """,
        name,
        role,
        hash_key(key),
        key[: len(KEY_PREFIX) + 6],
    )
    assert row is not None
    return ApiKey(**dict(row)), key


async def find_active(conn: Executor, key: str) -> ApiKey | None:
    row = await conn.fetchrow(
        """
        UPDATE api_keys SET last_used_at = now()
        WHERE key_hash = $1 AND revoked_at IS NULL
        RETURNING id, name, role, key_prefix, created_at, revoked_at
        """,
        hash_key(key),
    )
    return None if row is None else ApiKey(**dict(row))


async def list_all(conn: Executor) -> list[ApiKey]:
    rows = await conn.fetch(
        "SELECT id, name, role, key_prefix, created_at, revoked_at FROM api_keys ORDER BY id"
    )
    return [ApiKey(**dict(r)) for r in rows]


async def revoke(conn: Executor, key_id: int) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id
    )
    return bool(status.endswith(" 1"))
