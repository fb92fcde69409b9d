"""Migrations run once each, in order, and refuse a database edited out from under them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from csms.storage import migrate as migrate_module
from csms.storage.embedded import with_database
from csms.storage.migrate import Migration, MigrationError, discover, migrate


@pytest.fixture
async def empty_db(postgres_admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(with_database(postgres_admin_dsn, name))
    yield conn
    await conn.close()
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in discover()]
    assert versions == list(range(1, len(versions) + 1))


async def test_each_migration_runs_once(empty_db: asyncpg.Connection) -> None:
    first = await migrate(empty_db)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert await migrate(empty_db) == []
    recorded = await empty_db.fetchval("SELECT count(*) FROM schema_migrations")
    assert recorded == len(first)
    assert await empty_db.fetchval("SELECT to_regclass('sessions') IS NOT NULL")


async def test_a_changed_migration_stops_start_up(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_db)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in discover()]
    monkeypatch.setattr(migrate_module, "discover", lambda: edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(empty_db)


async def test_a_failing_migration_leaves_nothing_behind(
    empty_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = [*discover(), Migration(999, "broken", "CREATE TABLE half (id int); SELECT 1/0;")]
    monkeypatch.setattr(migrate_module, "discover", lambda: broken)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(empty_db)
    assert await empty_db.fetchval("SELECT to_regclass('half')") is None
    assert await empty_db.fetchval("SELECT max(version) FROM schema_migrations") < 999
