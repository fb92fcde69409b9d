"""The indexes a charger's call pays for, and the queries that read through them.

Every event and meter sample the charger path inserts writes an entry into each
index of its table (migration 0025, docs/database.md "What a call writes"). These
tests pin the index set of the two bulk tables -- a new index on them must say which
query needs it -- and check that the queries the narrowed indexes serve still read
only their rows on a database whose bulk rows (meter values, transaction updates)
far outnumber the rows those queries want.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from csms.dashboard import queries
from csms.monitoring import health_store, webhook_store
from csms.monitoring.webhooks import CATCH_UP_WINDOW_S
from csms.storage import migrate as migrate_module
from csms.storage.embedded import with_database
from tests.query_plans import Explaining, full_scans, rows_read

pytestmark = pytest.mark.timeout(120)

# Written by every insert into the table (no predicate), and why each is there.
FULL_INDEXES = {
    "events": {
        "events_pkey",  # the id: outbox order, prune, the feed's tie-break
        "events_event_id_key",  # resend detection (csms.dedupe)
        "events_charger",  # a charger's events (dashboard, transaction status, API)
        "events_recorded_at",  # outbox retention and lag
        "events_feed",  # the cluster feed / bus order (xact_id, id)
    },
    # append-only, never read by id: no primary key (migration 0026)
    "meter_samples": {"meter_samples_session"},  # a session's readings (billing, views, rollups)
}


async def test_the_bulk_tables_carry_only_the_indexes_their_queries_need(
    database_conn: asyncpg.Connection,
) -> None:
    rows = await database_conn.fetch(
        """
        SELECT t.relname AS table_name, i.relname AS index_name, x.indpred IS NOT NULL AS partial
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname IN ('events', 'meter_samples')
        """
    )
    full = {
        table: {r["index_name"] for r in rows if r["table_name"] == table and not r["partial"]}
        for table in FULL_INDEXES
    }
    assert full == FULL_INDEXES
    names = {r["index_name"] for r in rows}
    assert {
        "meter_samples_charger_health",
        "events_site_load_plans",
        "events_alerts_recorded",
    } <= names
    assert not names & {"meter_samples_charger", "events_type_time"}


@pytest.fixture
async def bulk(database_conn: asyncpg.Connection) -> asyncpg.Connection:
    """30,000 meter-value events of the last minutes (the bulk), 20 alert events and 20
    load plans of one site among them; 40,000 meter samples of 200 chargers, a quarter
    of them currents and temperatures."""
    await database_conn.execute(
        """
        INSERT INTO chargers (charge_point_id, model)
        SELECT 'cp-' || g, CASE WHEN g <= 20 THEN 'M1' ELSE 'M2' END
        FROM generate_series(1, 200) AS g
        """
    )
    await database_conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, payload)
        SELECT gen_random_uuid(), 'meter_sampled', 'cp-' || (1 + g % 200), 1, 1,
               now() - g * interval '10 ms', '{}'::jsonb
        FROM generate_series(1, 30000) AS g
        """
    )
    await database_conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
        SELECT gen_random_uuid(), t, c, now() - g * interval '1 s',
               '{"limit_a": 32, "allocated_a": [16, 16, 16], "measured_a": [1, 2, 3]}'::jsonb
        FROM generate_series(1, 20) AS g,
             (VALUES ('alert_opened', 'cp-1'), ('load_plan_computed', 'site:s1')) AS k(t, c)
        """
    )
    await database_conn.execute(
        """
        INSERT INTO meter_samples (charge_point_id, evse_id, connector_id, sampled_at,
                                   measurand, value, unit)
        SELECT 'cp-' || (1 + g % 200), 1, 1,
               now() - (g / 1600) * interval '1 minute',
               (ARRAY['Energy.Active.Import.Register', 'Power.Active.Import', 'Voltage',
                      'Current.Import', 'Temperature', 'Voltage', 'Power.Active.Import',
                      'SoC'])[1 + (g / 200) % 8],
               CASE WHEN (g / 200) % 8 = 4 THEN 35 ELSE 16 END, 'A'
        FROM generate_series(1, 40000) AS g
        """
    )
    await database_conn.execute("VACUUM ANALYZE")
    return database_conn


async def test_the_webhooks_catch_up_reads_the_alert_events_alone(
    bulk: asyncpg.Connection,
) -> None:
    await bulk.execute(
        "INSERT INTO webhook_subscriptions (id, url, secret, created_at) "
        "VALUES (1, 'http://127.0.0.1:9/hook', 's', now() - interval '1 day')"
    )
    explaining = Explaining(bulk, analyze=True)
    missed = await webhook_store.alert_events_not_queued(explaining, CATCH_UP_WINDOW_S)  # type: ignore[arg-type]
    assert len(missed) == 20
    assert full_scans(explaining.plans, ["events"]) == []
    # The 20 alerts, not the 30,000 meter values recorded in the same minutes.
    assert rows_read(explaining.plans, ["events"]) < 200


async def test_the_site_load_history_reads_the_sites_plans_alone(
    bulk: asyncpg.Connection,
) -> None:
    explaining = Explaining(bulk, analyze=True)
    now = datetime.now(UTC)
    history = await queries.site_load_history(
        explaining,  # type: ignore[arg-type]
        "s1",
        now - timedelta(hours=1),
        now + timedelta(minutes=1),
        60,
    )
    assert history and history[0]["limit_a"] == 32
    assert full_scans(explaining.plans, ["events"]) == []
    assert rows_read(explaining.plans, ["events"]) < 200


async def test_the_temperature_cells_read_currents_and_temperatures_of_the_cohort(
    bulk: asyncpg.Connection,
) -> None:
    explaining = Explaining(bulk, analyze=True)
    cells = await health_store.temperature_cells(
        explaining,  # type: ignore[arg-type]
        "M1",
        datetime.now(UTC) - timedelta(days=1),
    )
    assert cells and all(cell.mean_c == 35 for cell in cells)
    assert full_scans(explaining.plans, ["meter_samples"]) == []
    # At most the fleet's currents and temperatures (10,000, once per side of the
    # pairing), through the partial index; before it, two sequential scans of all
    # 40,000 samples. (For a cohort this small the planner reads the index whole
    # rather than probe it per charger.)
    assert rows_read(explaining.plans, ["meter_samples"]) <= 20_000


async def test_the_index_migrations_apply_to_a_database_with_rows(
    postgres_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0025 and 0026 on a database migrated up to them that holds samples, events, chargers."""
    name = f"hot_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(with_database(postgres_admin_dsn, name))
    try:
        every = migrate_module.discover()
        # By name: the integrator renumbers new migrations at merge.
        first = next(m.version for m in every if m.name == "hot_path_indexes")
        monkeypatch.setattr(
            migrate_module, "discover", lambda: [m for m in every if m.version < first]
        )
        await migrate_module.migrate(conn)
        await conn.execute(
            """
            INSERT INTO chargers (charge_point_id) VALUES ('cp-1');
            INSERT INTO meter_samples (charge_point_id, sampled_at, measurand, value)
            SELECT 'cp-1', now(), m, 1 FROM unnest(ARRAY['Temperature', 'Voltage']) AS m;
            INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
            VALUES (gen_random_uuid(), 'alert_opened', 'cp-1', now(), '{}');
            """
        )
        monkeypatch.setattr(migrate_module, "discover", lambda: every)
        applied = [m.name for m in await migrate_module.migrate(conn)]
        assert {"hot_path_indexes", "meter_samples_append_only"} <= set(applied)
        assert await conn.fetchval("SELECT count(*) FROM meter_samples") == 2
        options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'chargers'")
        assert options == ["fillfactor=50"]
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'meter_samples'"
        )
        indexes: dict[str, str] = {r["indexname"]: r["indexdef"] for r in rows}
        assert set(indexes) == {"meter_samples_session", "meter_samples_charger_health"}
        assert "WHERE (measurand = ANY" in indexes["meter_samples_charger_health"]
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
