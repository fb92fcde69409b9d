"""History of a realistic shape in a CSMS database, to check plans and costs against.

Production tables grow for months: a query that reads them whole is invisible on
the nearly empty database of a test or a fresh benchmark. These fill a migrated
database with the history of a 1,000-charger network -- most sessions ended and
1 % open, most alerts resolved, commands finished, closed status and downtime
intervals -- then ANALYZE it, for tests/query_plans.py and
``python -m bench.ingest_history``.
"""

from __future__ import annotations

import asyncpg

CHARGERS = 1_000


# -- history of a realistic shape -------------------------------------------------------
#
# Charger ids 'hist-0' .. 'hist-999'; 1.6 connectors 1 and 2 of each. Times spread
# over the last 30 days, the newest rows newest in id order as in production.


async def fill_chargers(conn: asyncpg.Connection, chargers: int = CHARGERS) -> None:
    """Chargers (about 90 % connected) with two connectors each."""
    await conn.execute(
        """
        INSERT INTO chargers (charge_point_id, protocol, vendor, model, connected,
                              last_seen_at, last_boot_at, node_id)
        SELECT 'hist-' || g, CASE WHEN g % 2 = 0 THEN 'ocpp1.6' ELSE 'ocpp2.0.1' END,
               'Vendor', 'Model-' || (g % 7), g % 10 <> 0,
               now() - (g % 60) * interval '1 second', now() - interval '1 day',
               CASE WHEN g % 10 <> 0 THEN 'hist-node' END
        FROM generate_series(0, $1 - 1) AS g
        """,
        chargers,
    )
    await conn.execute(
        """
        INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, status_at)
        SELECT 'hist-' || g, c, c, CASE WHEN g % 3 = 0 THEN 'Occupied' ELSE 'Available' END,
               now() - interval '1 hour'
        FROM generate_series(0, $1 - 1) AS g, generate_series(1, 2) AS c
        """,
        chargers,
    )


async def fill_sessions(
    conn: asyncpg.Connection, sessions: int = 100_000, chargers: int = CHARGERS
) -> None:
    """Sessions of the last 30 days, 1 % still open (the newest ones)."""
    await conn.execute(
        """
        INSERT INTO sessions (charge_point_id, protocol, transaction_id, evse_id, connector_id,
                              id_token, status, started_at, ended_at, meter_start_wh,
                              meter_start_at, meter_last_wh, meter_last_at, meter_stop_wh,
                              stop_reason, created_at, updated_at)
        SELECT 'hist-' || (g % $2), 'ocpp1.6', 'h' || g, 1 + g % 2, 1 + g % 2, 'TOKEN' || (g % 500),
               CASE WHEN open THEN 'active' ELSE 'ended' END,
               started, CASE WHEN open THEN NULL ELSE started + interval '2 hours' END,
               0, started, 12000, started + interval '2 hours',
               CASE WHEN open THEN NULL ELSE 12000 END,
               CASE WHEN open THEN NULL ELSE 'Local' END,
               started, CASE WHEN open THEN now() ELSE started + interval '2 hours' END
        FROM generate_series(1, $1) AS g,
             LATERAL (SELECT g > $1 - $1 / 100 AS open,
                             now() - ($1 - g) * (interval '30 days' / $1) AS started) AS s
        """,
        sessions,
        chargers,
    )


async def fill_billed_and_rolled_up(
    conn: asyncpg.Connection, billed: bool = True, rolled_up: bool = True
) -> None:
    """What a running CSMS keeps for every ended session: its CDR and its analytics rollup."""
    if billed:
        await conn.execute(
            """
            INSERT INTO cdrs (session_id, charge_point_id, evse_id, connector_id, transaction_id,
                              protocol, id_token, start_at, end_at, currency, total_energy_wh,
                              energy_by_period, charging_seconds, parking_seconds, items,
                              total_net, total_tax, total_cost)
            SELECT id, charge_point_id, evse_id, connector_id, transaction_id, protocol, id_token,
                   started_at, ended_at, 'EUR', 12000, '{}'::jsonb, 7200, 0, '[]'::jsonb, 0, 0, 0
            FROM sessions WHERE status = 'ended'
            """
        )
    if rolled_up:
        await conn.execute(
            """
            INSERT INTO analytics_sessions (session_id, last_charge_at, rolled_up_at)
            SELECT id, ended_at, updated_at FROM sessions WHERE status = 'ended'
            """
        )


async def fill_meter_samples(conn: asyncpg.Connection, samples: int = 100_000) -> None:
    """Energy register samples of the sessions above, in time order."""
    await conn.execute(
        """
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                   sampled_at, measurand, value, unit)
        SELECT s.charge_point_id, s.id, s.evse_id, s.connector_id,
               s.started_at + (g % 10) * interval '1 minute',
               'Energy.Active.Import.Register', (g % 10) * 100, 'Wh'
        FROM generate_series(1, $1) AS g
        JOIN sessions s ON s.id = 1 + (g / 10) % greatest((SELECT max(id) FROM sessions), 1)
        """,
        samples,
    )


async def fill_events(
    conn: asyncpg.Connection, events: int = 100_000, published: bool = True
) -> None:
    """Events of the usual mix, oldest first; published (a relay runs) or not (none does)."""
    await conn.execute(
        """
        INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id,
                            occurred_at, recorded_at, published_at, payload)
        SELECT gen_random_uuid(), t.type, 'hist-' || (g % 1000), 1, 1, at, at,
               CASE WHEN $2 THEN at END,
               jsonb_build_object('site_id', 'site-' || (g % 10), 'charging_state', 'Charging')
        FROM generate_series(1, $1) AS g,
             LATERAL (SELECT now() - ($1 - g) * (interval '30 days' / $1) AS at) AS w,
             LATERAL (SELECT (ARRAY['meter_sampled', 'meter_sampled', 'meter_sampled',
                                    'connector_status_changed', 'heartbeat_received',
                                    'transaction_started', 'transaction_ended',
                                    'charging_limit_set'])[1 + g % 8] AS type) AS t
        """,
        events,
        published,
    )


async def fill_status_history(conn: asyncpg.Connection, rows: int = 50_000) -> None:
    """Closed connector status intervals, plus the open one of every connector."""
    await conn.execute(
        """
        INSERT INTO connector_status_history (charge_point_id, evse_id, connector_id, status,
                                              started_at, ended_at)
        SELECT 'hist-' || (g % 1000), 1 + (g / 1000) % 2, 1 + (g / 1000) % 2,
               CASE WHEN g % 2 = 0 THEN 'Available' ELSE 'Occupied' END,
               now() - ($1 - g + 2) * (interval '30 days' / $1),
               now() - ($1 - g + 1) * (interval '30 days' / $1)
        FROM generate_series(1, $1) AS g
        """,
        rows,
    )
    await conn.execute(
        """
        INSERT INTO connector_status_history (charge_point_id, evse_id, connector_id, status,
                                              started_at)
        SELECT charge_point_id, evse_id, connector_id, status, now()
        FROM connectors
        """
    )


async def fill_downtime(conn: asyncpg.Connection, rows: int = 20_000) -> None:
    """Closed downtime intervals of the chargers, one open one for each disconnected charger."""
    await conn.execute(
        """
        INSERT INTO charger_downtime (charge_point_id, started_at, ended_at, reason)
        SELECT 'hist-' || (g % 1000), now() - ($1 - g + 2) * (interval '30 days' / $1),
               now() - ($1 - g + 1) * (interval '30 days' / $1), 'closed'
        FROM generate_series(1, $1) AS g
        """,
        rows,
    )
    await conn.execute(
        """
        INSERT INTO charger_downtime (charge_point_id, started_at, reason)
        SELECT charge_point_id, now() - interval '1 hour', 'closed'
        FROM chargers WHERE NOT connected
        """
    )


async def fill_alerts(conn: asyncpg.Connection, rows: int = 20_000) -> None:
    """Alerts, all but the newest 1 % resolved."""
    await conn.execute(
        """
        INSERT INTO alerts (charge_point_id, rule, severity, status, message, first_seen,
                            last_seen, resolved_at, resolved_by)
        SELECT 'hist-' || (g % 1000), 'rule-' || (g / 1000), 'warning',
               CASE WHEN open THEN 'open' ELSE 'resolved' END, 'history', at, at,
               CASE WHEN open THEN NULL ELSE at END, CASE WHEN open THEN NULL ELSE 'auto' END
        FROM generate_series(1, $1) AS g,
             LATERAL (SELECT g > $1 - $1 / 100 AS open,
                             now() - ($1 - g) * (interval '30 days' / $1) AS at) AS s
        """,
        rows,
    )


async def fill_cluster_commands(conn: asyncpg.Connection, rows: int = 20_000) -> None:
    """Finished commands between nodes."""
    await conn.execute(
        """
        INSERT INTO cluster_commands (caller_node, target_node, charge_point_id, generation,
                                      payload, deadline, state, created_at, finished_at)
        SELECT 'node-a', 'node-b', 'hist-' || (g % 1000), 1, '{}'::jsonb, at, 'answered', at, at
        FROM generate_series(1, $1) AS g,
             LATERAL (SELECT now() - ($1 - g) * (interval '30 days' / $1) AS at) AS w
        """,
        rows,
    )


async def fill_history(conn: asyncpg.Connection, scale: float = 1.0) -> None:
    """All of the above at ``scale`` times the test volumes, then ANALYZE."""
    await fill_chargers(conn)
    await fill_sessions(conn, int(100_000 * scale))
    await fill_meter_samples(conn, int(100_000 * scale))
    await fill_billed_and_rolled_up(conn)
    await fill_events(conn, int(100_000 * scale))
    await fill_status_history(conn, int(50_000 * scale))
    await fill_downtime(conn, int(20_000 * scale))
    await fill_alerts(conn, int(20_000 * scale))
    await fill_cluster_commands(conn, int(20_000 * scale))
    await conn.execute("VACUUM ANALYZE")
