"""Postgres storage: the pool, migrations and the SQL for each projection.

Everything that matters lives here, so that any CSMS process (and later any
node) sees the same chargers, sessions and events.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What the SQL helpers run on: a pooled connection inside a transaction, or the
# pool itself for a single statement.
Executor: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record] "
    "| asyncpg.Pool[asyncpg.Record]"
)
