"""Open the database the settings name (or the embedded one) and bring its schema up to date."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from csms.config import Settings
from csms.monitoring import metrics, metrics_workers
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
    """The chargers' pool. Its connections are not reset on release (see :func:`_no_reset`)."""
    if settings.migrate_on_start:
        applied = await run_migrations(dsn)
        log.info("db.schema_ready", migrations_applied=applied)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        reset=_no_reset,
        **_timeouts(settings),
    )
    assert pool is not None
    export_pool_gauges(pool, "chargers")
    return pool


async def open_api_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """The operator API's own small pool: API queries queue here, never for a charger's."""
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=settings.api_db_pool_max, **_timeouts(settings)
    )
    assert pool is not None
    export_pool_gauges(pool, "api")
    return pool


def export_pool_gauges(pool: asyncpg.Pool, name: str) -> None:
    """``csms_db_pool_connections{pool=name}``, read from the pool at each scrape."""
    metrics_workers.gauge_function(
        metrics.DB_POOL_CONNECTIONS.labels(name, "busy"),
        lambda: pool.get_size() - pool.get_idle_size(),
    )
    metrics_workers.gauge_function(
        metrics.DB_POOL_CONNECTIONS.labels(name, "idle"), pool.get_idle_size
    )


def _timeouts(settings: Settings) -> dict[str, Any]:
    """A statement that hangs (a lock, a blip) is cancelled by the server, and the client
    stops waiting a little later; the caller gets an error instead of waiting for ever."""
    return {
        "command_timeout": settings.db_statement_timeout + 5,
        "server_settings": {"statement_timeout": str(int(settings.db_statement_timeout * 1000))},
    }


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Release a pool connection without asyncpg's reset query.

    The default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    at every release: one more round trip per charger message (8 % of the event
    loop in the ingest profile, docs/profiling.md). asyncpg still rolls back an
    open transaction and drops listeners before calling this. The rule that makes
    it safe: no session state on a pool connection -- ``SET LOCAL`` /
    ``set_config(..., true)`` rather than ``SET``, transaction-level advisory locks,
    LISTEN on a connection of its own; a session-level lock (the outbox relay's)
    is unlocked before release, or the connection terminated.
    """
