"""Index builds in migrations do not block writes (csms/storage/migrate_online.py).

A plain CREATE INDEX blocks every write to its table while it builds. Here a
migration's index is built CONCURRENTLY -- a ``-- migrate: no-transaction``
migration's own, or a transactional migration's ``CREATE INDEX IF NOT EXISTS``
built first -- and a charger's write to the table goes through while the build
waits; the plain build, as a control, blocks it. An invalid index left by a
failed build is built again, and a no-transaction migration that could not be
run again safely is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from csms.storage import migrate as migrate_module
from csms.storage.migrate import Migration, MigrationError, discover, migrate
from csms.storage.migrate_online import concurrent_form, index_name, statements
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def test_statements_respect_quotes_comments_and_function_bodies() -> None:
    sql = """
        -- a comment; with a semicolon
        CREATE TABLE t (a text DEFAULT 'x;y', "b;" int); /* block; comment */
        CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
        BEGIN RETURN 1; END; $body$;
        INSERT INTO t (a) VALUES ('it''s; fine')
    """
    assert statements(sql) == [
        """CREATE TABLE t (a text DEFAULT 'x;y', "b;" int)""",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n"
        "        BEGIN RETURN 1; END; $body$",
        "INSERT INTO t (a) VALUES ('it''s; fine')",
    ]


def test_every_shipped_migration_splits_into_statements() -> None:
    for migration in discover():
        parts = statements(migration.sql)
        assert parts, migration.name
        assert all(not part.endswith(";") for part in parts)


def test_only_if_not_exists_index_builds_get_a_concurrent_twin() -> None:
    assert concurrent_form(
        "CREATE INDEX IF NOT EXISTS sessions_ended_at ON sessions (ended_at)"
    ) == ("CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_ended_at ON sessions (ended_at)")
    assert concurrent_form(
        "CREATE UNIQUE INDEX IF NOT EXISTS u ON public.t USING btree (a) WHERE a IS NOT NULL"
    ) == (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON public.t USING btree (a)"
        " WHERE a IS NOT NULL"
    )
    assert concurrent_form("CREATE INDEX plain ON t (a)") is None  # would then fail
    assert concurrent_form("CREATE INDEX CONCURRENTLY IF NOT EXISTS c ON t (a)") is None
    assert concurrent_form("CREATE TABLE t (a int)") is None
    assert index_name("CREATE INDEX CONCURRENTLY IF NOT EXISTS c ON t (a)") == ("c", "t")


@pytest.fixture
async def conn(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn)
    yield conn
    await conn.close()


def shipping(monkeypatch: pytest.MonkeyPatch, sql: str) -> None:
    """Ship one more migration (999) after the real ones."""
    extra = Migration(999, "extra", sql)
    monkeypatch.setattr(migrate_module, "discover", lambda: [*discover(), extra])


async def _waiting_for_a_lock(conn: asyncpg.Connection, pid: int) -> bool:
    state = await conn.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return state == "Lock"


async def _insert_during_the_build(database_dsn: str) -> None:
    """Run the migrations while a charger's write is in flight, and write again meanwhile.

    The index build waits for the open write to end; meanwhile another write
    must go through (lock_timeout: one that would wait for the build fails).
    """
    holder, writer, migrator = [await asyncpg.connect(database_dsn) for _ in range(3)]
    in_flight = holder.transaction()
    await in_flight.start()
    migrating: asyncio.Task[list[Migration]] | None = None
    try:
        await holder.execute("INSERT INTO chargers (charge_point_id) VALUES ('IN-FLIGHT')")
        pid = migrator.get_server_pid()
        migrating = asyncio.create_task(migrate(migrator))
        await eventually(lambda: _waiting_for_a_lock(writer, pid), within=30)
        await writer.execute("SET lock_timeout = '1s'")
        await writer.execute("INSERT INTO chargers (charge_point_id) VALUES ('DURING')")
    finally:
        await in_flight.commit()
        if migrating is not None:
            await migrating
        for conn in (holder, writer, migrator):
            await conn.close()


async def test_a_no_transaction_migration_builds_without_blocking_writes(
    database_dsn: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(
        monkeypatch,
        "-- migrate: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS chargers_by_vendor ON chargers (vendor);\n",
    )
    await _insert_during_the_build(database_dsn)
    assert await valid(conn, "chargers_by_vendor")
    assert await conn.fetchval("SELECT name FROM schema_migrations WHERE version = 999") == "extra"
    assert await migrate(conn) == []  # recorded: not run again


async def test_a_transactional_migrations_index_is_built_concurrently_first(
    database_dsn: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(
        monkeypatch,
        "ALTER TABLE chargers ADD COLUMN IF NOT EXISTS note text;\n"
        "CREATE INDEX IF NOT EXISTS chargers_by_model ON chargers (model);\n"
        "CREATE INDEX IF NOT EXISTS chargers_by_note ON chargers (note);\n",
    )
    await _insert_during_the_build(database_dsn)
    assert await valid(conn, "chargers_by_model")
    # Its column did not exist before the migration: built inside its transaction.
    assert await valid(conn, "chargers_by_note")


async def test_control_a_plain_index_build_blocks_writes(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(monkeypatch, "CREATE INDEX chargers_plain ON chargers (model);\n")
    with pytest.raises(asyncpg.LockNotAvailableError):
        await _insert_during_the_build(database_dsn)


async def test_an_invalid_index_left_by_a_failed_build_is_built_again(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await conn.execute(
        "INSERT INTO chargers (charge_point_id, vendor) VALUES ('A', 'v'), ('B', 'v')"
    )
    with pytest.raises(asyncpg.UniqueViolationError):  # as a crash would leave it
        await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY chargers_vendor ON chargers (vendor)")
    assert not await valid(conn, "chargers_vendor")
    await conn.execute("UPDATE chargers SET vendor = charge_point_id")
    shipping(
        monkeypatch,
        "-- migrate: no-transaction\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS chargers_vendor ON chargers (vendor);\n",
    )
    await migrate(conn)
    assert await valid(conn, "chargers_vendor")


async def test_a_no_transaction_migration_must_be_safe_to_run_again(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipping(
        monkeypatch,
        "-- migrate: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS fine ON chargers (model);\n"
        "CREATE INDEX CONCURRENTLY unsafe ON chargers (vendor);\n",
    )
    with pytest.raises(MigrationError, match="unsafe must be CREATE INDEX CONCURRENTLY IF NOT"):
        await migrate(conn)
    assert await conn.fetchval("SELECT to_regclass('fine')") is None  # nothing was run


async def valid(conn: asyncpg.Connection, index: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", index
        )
    )
