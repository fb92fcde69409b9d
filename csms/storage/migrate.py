"""Apply the versioned SQL files in :mod:`migrations`, each exactly once.

Several CSMS processes may start at the same time against one database; an
advisory lock makes them take turns, so each migration runs once.

A migration runs in one transaction: all of it or nothing. Index builds on
tables that already hold data are the exception (:mod:`csms.storage.migrate_online`):

* a migration whose first lines hold ``-- migrate: no-transaction`` runs
  statement by statement outside a transaction, for ``CREATE INDEX
  CONCURRENTLY IF NOT EXISTS`` on a big table, which may not run inside one.
  Every statement of it must be safe to run again (a crash in the middle runs
  the whole file again at the next start); an invalid index left by a failed
  concurrent build is dropped and built again;
* before a transactional migration, each of its ``CREATE INDEX IF NOT EXISTS``
  on a table that exists already is first built ``CONCURRENTLY``; the
  migration's own statement then finds it and does nothing. That is how the
  history indexes of 0023 reach a grown database without blocking its writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from csms.storage import migrate_online

log = structlog.get_logger(__name__)

_LOCK_KEY = 0x0C5A5_0001  # arbitrary, fixed: "the CSMS migrator"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database and the migration files disagree; starting would be unsafe."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def in_transaction(self) -> bool:
        """False for a ``-- migrate: no-transaction`` migration (the module docstring)."""
        return migrate_online.NO_TRANSACTION.search(self.sql) is None


def discover() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("migrations").iterdir():
        match = _FILENAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def migrate(conn: asyncpg.Connection[asyncpg.Record]) -> list[Migration]:
    """Apply every migration not yet recorded; return the ones applied now."""
    await _take_turn(conn)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        done: list[Migration] = []
        for migration in discover():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed "
                        "after it was applied; add a new migration instead"
                    )
                continue
            if migration.in_transaction:
                await _build_indexes_first(conn, migration)
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await _record(conn, migration)
            else:
                await _apply_outside_a_transaction(conn, migration)
            log.info("db.migration_applied", version=migration.version, name=migration.name)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _take_turn(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Wait for the migrator lock without a statement open while waiting.

    A process blocked in ``pg_advisory_lock`` holds a snapshot, and ``CREATE
    INDEX CONCURRENTLY`` waits for every older snapshot: the migrating process
    would wait for the waiting one, which waits for it. Short tries hold none.
    """
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            return
        await asyncio.sleep(0.2)  # another process migrates: poll, no event to wait on


async def _record(conn: asyncpg.Connection[asyncpg.Record], migration: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        migration.version,
        migration.name,
        migration.checksum,
    )


async def _build_indexes_first(
    conn: asyncpg.Connection[asyncpg.Record], migration: Migration
) -> None:
    """Build the migration's ``CREATE INDEX IF NOT EXISTS`` on existing tables concurrently.

    One that cannot be built yet (a column the migration adds first, say) is left to
    the migration's transaction, as before.
    """
    for statement in migrate_online.statements(migration.sql):
        twin = migrate_online.concurrent_form(statement)
        names = migrate_online.index_name(statement)
        if twin is None or names is None:
            continue
        if not await migrate_online.table_exists(conn, names[1]):
            continue
        try:
            await migrate_online.build_concurrently(conn, twin)
        except asyncpg.PostgresError as error:
            log.warning(
                "db.index_not_built_concurrently", version=migration.version, index=names[0],
                error=repr(error)[:200], detail="built inside the migration's transaction",
            )  # fmt: skip
        else:
            log.info("db.index_built_concurrently", version=migration.version, index=names[0])


async def _apply_outside_a_transaction(
    conn: asyncpg.Connection[asyncpg.Record], migration: Migration
) -> None:
    """A ``no-transaction`` migration: its statements one by one, recorded after the last."""
    parts = migrate_online.statements(migration.sql)
    for statement in parts:
        names = migrate_online.index_name(statement)
        if names is not None and not re.search(
            r"\bCONCURRENTLY\s+IF\s+NOT\s+EXISTS\b", statement, re.IGNORECASE
        ):
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} runs outside a "
                f"transaction: index {names[0]} must be CREATE INDEX CONCURRENTLY IF NOT "
                "EXISTS, so that running it again after a crash is safe"
            )
    for statement in parts:
        if migrate_online.index_name(statement) is not None:
            await migrate_online.build_concurrently(conn, statement)
        else:
            await conn.execute(statement)
    await _record(conn, migration)
