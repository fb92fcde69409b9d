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
from dataclasses import dataclass
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
    """100,000 sessions and their CDRs over 30 days, 40,000 alerts, 1,000 chargers; and one
    busy charger's 5,000 sessions of the month before (older, so lower ids)."""
    await fill_chargers(database_conn)
    await database_conn.execute(
        """
        INSERT INTO sessions (charge_point_id, protocol, transaction_id, id_token, status,
                              started_at, ended_at)
        SELECT $1, 'ocpp1.6', 'busy' || g, 'BUSY', 'ended',
               now() - interval '60 days' + g * interval '8 minutes',
               now() - interval '60 days' + g * interval '8 minutes' + interval '5 minutes'
        FROM generate_series(1, 5000) AS g
        """,
        BUSY,
    )
    await fill_sessions(database_conn, 100_000)
    await fill_billed_and_rolled_up(database_conn, rolled_up=False)
    await fill_alerts(database_conn, 40_000)
    # The rare critical ones, spread over the month: one in a thousand.
    await database_conn.execute("UPDATE alerts SET severity = 'critical' WHERE id % 1000 = 0")
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


BUSY = "hist-999"  # 100 sessions this month, 5,000 in the month before
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


NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=25)
PAGE = 50


@dataclass(frozen=True)
class Page:
    """A list page that walked its table until it found its rows, and what it reads now."""

    name: str
    lister: Lister
    filters: dict[str, Any]
    table: str
    # at most, beyond the page itself (one row looked at per row returned, twice)
    extra: int = 20
    generic_too: bool = True  # False: the list plans this statement for its values


PAGES = [
    # 200 sessions of 100,000: the generic plan read about 25,000 (walking ids backwards)
    Page("sessions of a token", views.list_sessions, {"id_token": "token7"}, "sessions"),
    Page(
        "next page of a token",
        views.list_sessions,
        {"id_token": "TOKEN7", "before_id": 60_000},
        "sessions",
    ),
    # every session after the date was read first: 83,000
    Page("sessions before an old date", views.list_sessions, {"until": OLD}, "sessions"),
    Page(
        "next page before an old date",
        views.list_sessions,
        {"until": OLD, "before_id": 10_000},
        "sessions",
    ),
    # A day of a month (3,333 sessions): a generic plan would read the day (the B-tree on
    # started_at and a sort); for a wide range, a big part of the table.
    Page(
        "ended sessions of an old day",
        views.list_sessions,
        {"since": OLD - timedelta(days=1), "until": OLD, "status": "ended"},
        "sessions",
        generic_too=False,
    ),
    Page(
        "sessions of an old month",
        views.list_sessions,
        {"since": NOW - timedelta(days=31), "until": OLD},
        "sessions",
        generic_too=False,
    ),
    # fewer than a page in the range: the walk never stopped early and read all 100,000
    Page(
        "sessions of the last minutes",
        views.list_sessions,
        {"since": NOW - timedelta(minutes=10)},
        "sessions",
    ),
    # open sessions that started long ago (none here): read the 1,000 open ones, not all
    Page(
        "sessions open since an old date",
        views.list_sessions,
        {"until": OLD, "status": "active"},
        "sessions",
        extra=1_100,
    ),
    # the newest open ones, not every open session (as the form above would read)
    Page("open sessions", views.list_sessions, {"status": "active"}, "sessions"),
    # 1,000 alerts a rule (ids 1,000 to 1,999 are rule-1's, a month old): 38,000 newer
    # alerts were read first
    Page("alerts of an old rule", alerts_store.search, {"rule": "rule-1"}, "alerts"),
    Page(
        "next page of an old rule",
        alerts_store.search,
        {"rule": "rule-20", "before_id": 20_500},
        "alerts",
    ),
    # 40 critical alerts among 40,000: fewer than a page, the walk read all of them
    Page("critical alerts", alerts_store.search, {"severity": "critical"}, "alerts"),
    # A charger's 5,100 sessions were read through its key (charger, transaction id) and
    # sorted for the newest 50; its older pages the same.
    Page("sessions of a busy charger", views.list_sessions, {"charge_point_id": BUSY}, "sessions"),
    Page(
        "old page of a busy charger",
        views.list_sessions,
        {"charge_point_id": BUSY, "before_id": 2_000},
        "sessions",
    ),
    Page(
        "ended sessions of a busy charger",
        views.list_sessions,
        {"charge_point_id": BUSY, "status": "ended"},
        "sessions",
    ),
    # alerts seen in the last minutes (fewer than a page): the walk read all 40,000
    Page(
        "alerts of the last minutes",
        alerts_store.search,
        {"since": NOW - timedelta(minutes=10)},
        "alerts",
    ),
    # the first page of the last week, and a page further down it
    Page(
        "alerts of the last week", alerts_store.search, {"since": NOW - timedelta(days=7)}, "alerts"
    ),
    Page(
        "next page of the last week",
        alerts_store.search,
        {"since": NOW - timedelta(days=7), "before_id": 35_000},
        "alerts",
    ),
]


async def test_a_page_by_token_rule_severity_or_start_time_reads_about_the_page(
    history: asyncpg.Connection,
) -> None:
    for page in PAGES:
        # The generic plan (as a prepared statement may end up with), and with the values.
        for generic in (True, False) if page.generic_too else (False,):
            explaining = Explaining(history, analyze=True, generic=generic)
            found = await page.lister(explaining, limit=PAGE, **page.filters)
            assert found or page.filters.get("status") == "active", page.name
            assert full_scans(explaining.plans, [page.table]) == [], page.name
            read = rows_read(explaining.plans, [page.table])
            assert read <= 2 * len(found) + page.extra, (page.name, generic, read, len(found))


async def test_a_page_of_a_time_range_is_planned_for_its_values_every_time(
    history: asyncpg.Connection,
) -> None:
    """The real call, more often than a prepared statement takes to turn generic."""
    since, until = OLD - timedelta(days=1), OLD
    # pg_stat_xact_* also holds what this backend did shortly before and has not yet
    # flushed to the shared statistics (the fixture's fills): count the difference.
    rows_read_so_far = """
        SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables
        WHERE relname = 'sessions'
    """
    async with history.transaction():
        before = await history.fetchval(rows_read_so_far)
        for _ in range(8):
            found = await views.list_sessions(history, since=since, until=until, limit=PAGE)
            assert len(found) == PAGE
        read = await history.fetchval(rows_read_so_far) - before
    # 8 pages of 50; the day's 3,333 sessions a page (the generic plan) would be 26,664
    assert read <= 8 * (2 * PAGE + 20), read


async def test_every_combination_of_filters_gives_what_filtering_by_hand_gives(
    database_conn: asyncpg.Connection,
) -> None:
    conn = database_conn
    await fill_chargers(conn, 20)
    await fill_sessions(conn, 2_000, chargers=20)
    # Sessions stored long after they started (a charger offline for days): new ids, old
    # starts. The order is still by id.
    await conn.execute(
        """
        INSERT INTO sessions (charge_point_id, protocol, transaction_id, id_token, status,
                              started_at, ended_at)
        SELECT 'hist-' || (g % 20), 'ocpp1.6', 'late' || g, 'TOKEN' || (g % 500), 'ended',
               now() - g * interval '7 hours', now() - g * interval '7 hours' + interval '1 hour'
        FROM generate_series(1, 60) AS g
        """
    )
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


async def test_every_combination_of_alert_filters_gives_what_filtering_by_hand_gives(
    database_conn: asyncpg.Connection,
) -> None:
    conn = database_conn
    await fill_chargers(conn, 20)
    await fill_alerts(conn, 3_000)  # rules rule-0 to rule-3, 1,000 each in id order
    await conn.execute(
        """
        UPDATE alerts SET severity = CASE WHEN id % 7 = 0 THEN 'critical' ELSE severity END
        """
    )
    await conn.execute(
        """
        UPDATE alerts SET status = 'acknowledged', resolved_at = NULL, resolved_by = NULL
        WHERE id % 11 = 0
        """
    )
    await conn.execute("VACUUM ANALYZE alerts")
    every = [dict(r) for r in await conn.fetch("SELECT * FROM alerts ORDER BY id DESC")]
    middle = every[len(every) // 2]
    values: dict[str, list[Any]] = {
        "status": [None, "unresolved", "open", "acknowledged", "resolved"],
        "severity": [None, "critical"],
        "rule": [None, "rule-1"],
        "charge_point_id": [None, middle["charge_point_id"]],
        "since": [None, middle["last_seen"]],
        "before_id": [None, middle["id"] + 500],
    }

    def matches(row: dict[str, Any], f: dict[str, Any]) -> bool:
        unresolved = f["status"] == "unresolved"
        return (
            (f["status"] is None or row["status"] == f["status"] or unresolved)
            and (not unresolved or row["status"] != "resolved")
            and (f["severity"] is None or row["severity"] == f["severity"])
            and (f["rule"] is None or row["rule"] == f["rule"])
            and (f["charge_point_id"] is None or row["charge_point_id"] == f["charge_point_id"])
            and (f["since"] is None or row["last_seen"] >= f["since"])
            and (f["before_id"] is None or row["id"] < f["before_id"])
        )

    for combination in itertools.product(*values.values()):
        given = dict(zip(values, combination, strict=True))
        found = await alerts_store.search(conn, limit=30, **given)
        expected = [r["id"] for r in every if matches(r, given)][:30]
        assert [r.id for r in found] == expected, given
