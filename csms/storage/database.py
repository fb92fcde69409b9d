"""Open the database the settings name (or the embedded one) and bring its schema up to date."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from csms.config import Settings
from csms.storage.embedded import start_embedded
from csms.storage.migrate import migrate

log = structlog.get_logger(__name__)


async def resolve_dsn(settings: Settings) -> str:
    """``DATABASE_URL`` if set; otherwise start the embedded Postgres in ``data_dir``."""
    if settings.database_url:
        return settings.database_url
    return await start_embedded(settings.data_dir)


async def run_migrations(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return len(await migrate(conn))
    finally:
        await conn.close()


async def open_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    if settings.migrate_on_start:
        applied = await run_migrations(dsn)
        log.info("db.schema_ready", migrations_applied=applied)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        reset=_no_session_reset,
        **_timeouts(settings),
    )
    assert pool is not None
    return pool


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's reset query.

    asyncpg still rolls back an open transaction and drops listeners first; its
    default then sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` -- one more round trip per acquire (about a tenth of the CPU of a
    reconnect storm, docs/capacity.md). The charger pool keeps no session state:
    advisory locks on it are transaction-scoped (or unlocked by their holder, the
    outbox relay), settings are ``SET LOCAL``, LISTEN runs on connections of its own.
    """


async def open_api_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """The operator API's own small pool: API queries queue here, never for a charger's."""
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=settings.api_db_pool_max, **_timeouts(settings)
    )
    assert pool is not None
    return pool


def _timeouts(settings: Settings) -> dict[str, Any]:
    """A statement that hangs (a lock, a blip) is cancelled by the server, and the client
    stops waiting a little later; the caller gets an error instead of waiting for ever."""
    return {
        "command_timeout": settings.db_statement_timeout + 5,
        "server_settings": {"statement_timeout": str(int(settings.db_statement_timeout * 1000))},
    }
