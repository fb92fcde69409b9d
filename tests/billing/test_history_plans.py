"""Billing's queries cost what they find, not the size of the history.

* A CDR reads the charger's state changes within its session (per session end):
  through ``events_charger`` that read every event the charger ever sent.
* The TransactionEvent(Ended) answer's total cost reads the session's CDR, not every
  CDR of the charger.
* The sweeper (every minute, on the lease holder) looked for ended sessions without
  a CDR among all sessions, anti-joined with every CDR ever made; now, after its
  first sweep, among the sessions changed since the previous one began.
docs/database.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bench.history import fill_billed_and_rolled_up, fill_chargers, fill_events, fill_sessions
from billing import cdrs, usage
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def billed(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """100,000 sessions of 30 days, every ended one with its CDR."""
    await fill_chargers(database_conn)
    await fill_sessions(database_conn, 100_000)
    await fill_billed_and_rolled_up(database_conn, rolled_up=False)
    await database_conn.execute(
        "VACUUM ANALYZE"
    )  # as autovacuum would have: BRIN ranges summarised
    return database_conn


async def test_a_cdr_reads_the_state_changes_of_its_session_window_only(
    billed: asyncpg.Connection,
) -> None:
    await fill_events(billed, 100_000)  # 100 per charger over the 30 days
    await billed.execute("VACUUM ANALYZE events")
    session = await usage.find_session(
        billed, await billed.fetchval("SELECT max(id) FROM sessions WHERE status = 'ended'")
    )
    assert session is not None and session.ended_at is not None
    explaining = Explaining(billed, analyze=True)
    await usage._states(explaining, session, session.ended_at)  # type: ignore[arg-type]
    (plan,) = explaining.plans
    assert full_scans([plan], ["events"]) == [], plan
    # The charger's 100 events of 30 days, 2 hours of them in the window.
    assert rows_read([plan], ["events"]) < 20, plan


async def test_a_sweep_after_the_first_reads_only_sessions_changed_lately(
    billed: asyncpg.Connection,
) -> None:
    explaining = Explaining(billed, analyze=True)
    since = datetime.now(UTC) - timedelta(minutes=61)  # the previous sweep's start, less 1 h
    await cdrs.sessions_without_cdr(explaining, since, None, 100)  # type: ignore[arg-type]
    (plan,) = explaining.plans
    assert full_scans([plan], ["sessions", "cdrs"]) == [], plan
    assert rows_read([plan], ["sessions", "cdrs"]) < 10_000, plan


async def test_the_total_cost_answer_reads_its_own_cdr_only(billed: asyncpg.Connection) -> None:
    ended = await billed.fetchrow(
        "SELECT charge_point_id, transaction_id FROM sessions WHERE status = 'ended' LIMIT 1"
    )
    assert ended is not None
    explaining = Explaining(billed, analyze=True)
    await cdrs.session_cost(explaining, ended["charge_point_id"], ended["transaction_id"])  # type: ignore[arg-type]
    assert full_scans(explaining.plans, ["sessions", "cdrs"]) == []
    # One session, one CDR; before: every CDR of the charger (100 of 30 days).
    assert rows_read(explaining.plans, ["sessions", "cdrs"]) <= 2
