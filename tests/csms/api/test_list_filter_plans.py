"""Filtered lists of history tables are planned for the filters given (csms/storage/where.py).

Written ``($1::text IS NULL OR charge_point_id = $1)``, a list statement is one
statement for every combination of filters; asyncpg prepares it, and the
generic plan a prepared statement may switch to after five runs read the whole
table (sessions, alerts, CDRs) for a filtered page. Now only the filters given
become conditions: the generic plan of each combination uses its index. The
results are the same as filtering every row by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bench.history import fill_alerts, fill_billed_and_rolled_up, fill_chargers, fill_sessions
from billing import cdrs
from csms.monitoring import alerts_store
from csms.storage import views
from csms.storage.where import Where
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(180)


def test_only_the_filters_given_become_conditions_with_bound_values() -> None:
    where = Where()
    where.add("charge_point_id = {}", "CP'; DROP TABLE sessions; --")
    where.add("status = {}", None)
    where.add("started_at >= {} AND started_at < {}", datetime(2026, 1, 1, tzinfo=UTC))
    where.always("status <> 'resolved'")
    limit = where.param(10)
    assert where.sql == (
        "(charge_point_id = $1) AND (started_at >= $2 AND started_at < $2)"
        " AND (status <> 'resolved')"
    )
    assert limit == "$3"
    assert where.args == ["CP'; DROP TABLE sessions; --", datetime(2026, 1, 1, tzinfo=UTC), 10]
    assert Where().sql == "true"


@pytest.fixture
async def history(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 sessions and their CDRs over 30 days, 40,000 alerts, 1,000 chargers."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 100_000)
    await fill_billed_and_rolled_up(database_conn, rolled_up=False)
    await fill_alerts(database_conn, 40_000)
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


Lister = Callable[..., Any]
CASES: list[tuple[str, Lister, dict[str, Any], str]] = [
    ("sessions of a charger", views.list_sessions, {"charge_point_id": "hist-7"}, "sessions"),
    ("sessions, none given", views.list_sessions, {}, "sessions"),
    ("ended sessions", views.list_sessions, {"status": "ended"}, "sessions"),
    (
        "active session of a charger",
        views.list_sessions,
        {"status": "active", "charge_point_id": "hist-7"},
        "sessions",
    ),
    ("alerts of a charger", alerts_store.search, {"charge_point_id": "hist-7"}, "alerts"),
    ("alerts, none given", alerts_store.search, {}, "alerts"),
    ("CDRs of a charger", cdrs.list_cdrs, {"charge_point_id": "hist-7"}, "cdrs"),
    ("CDRs, none given", cdrs.list_cdrs, {}, "cdrs"),
]


async def test_the_generic_plan_of_a_filtered_page_reads_the_page(
    history: asyncpg.Connection,
) -> None:
    for name, lister, filters, table in CASES:
        # As asyncpg's prepared statement may end up after five runs: the generic plan.
        explaining = Explaining(history, analyze=True, generic=True)
        found = await lister(explaining, limit=50, **filters)
        assert found, name
        assert full_scans(explaining.plans, [table]) == [], name
        # A charger has 100 sessions (and CDRs) and 40 alerts: a page reads about them,
        # never the 100,000 rows of the table (as the generic plan did before).
        assert rows_read(explaining.plans, [table]) <= 1_100, name


async def test_every_combination_of_filters_gives_what_filtering_by_hand_gives(
    database_conn: asyncpg.Connection,
) -> None:
    conn = database_conn
    await fill_chargers(conn, 20)
    await fill_sessions(conn, 2_000, chargers=20)
    await conn.execute("VACUUM ANALYZE sessions")
    every = [dict(r) for r in await conn.fetch("SELECT * FROM sessions ORDER BY id DESC")]
    middle = every[len(every) // 2]["started_at"]
    values: dict[str, list[Any]] = {
        "charge_point_id": [None, "hist-3"],
        "id_token": [None, "token3"],  # the token filter ignores case
        "since": [None, middle - timedelta(days=5)],
        "until": [None, middle],
        "status": [None, "ended"],
        "before_id": [None, every[100]["id"]],
    }

    def matches(row: dict[str, Any], f: dict[str, Any]) -> bool:
        return (
            (f["charge_point_id"] is None or row["charge_point_id"] == f["charge_point_id"])
            and (f["id_token"] is None or row["id_token"].lower() == f["id_token"].lower())
            and (f["since"] is None or row["started_at"] >= f["since"])
            and (f["until"] is None or row["started_at"] < f["until"])
            and (f["status"] is None or row["status"] == f["status"])
            and (f["before_id"] is None or row["id"] < f["before_id"])
        )

    for combination in itertools.product(*values.values()):
        given = dict(zip(values, combination, strict=True))
        found = await views.list_sessions(conn, limit=30, **given)
        expected = [r["id"] for r in every if matches(r, given)][:30]
        assert [r["id"] for r in found] == expected, given
