"""SQL behind the health score: rolling counts per charger and temperature against current."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from csms.monitoring.health import (
    ChargerStats,
    ConnectorKey,
    Health,
    TemperatureCell,
    daily_excess,
    health,
    temperature_drift,
)
from csms.storage import Executor

CURRENT_BAND_A = 4.0  # width of the current bands temperatures are compared in


async def models(
    conn: Executor, charge_point_ids: Sequence[str] | None = None
) -> dict[str, str | None]:
    """Model (the cohort) of each charger; all chargers when ``charge_point_ids`` is None."""
    records = await conn.fetch(
        "SELECT charge_point_id, model FROM chargers "
        "WHERE $1::text[] IS NULL OR charge_point_id = ANY($1::text[])",
        None if charge_point_ids is None else list(charge_point_ids),
    )
    return {r["charge_point_id"]: r["model"] for r in records}


async def temperature_cells(
    conn: Executor, model: str | None, since: datetime, band_a: float = CURRENT_BAND_A
) -> list[TemperatureCell]:
    """Mean temperature per connector, day and current band, for every charger of ``model``.

    Temperature and current are separate samples of the same meter value:
    they are paired by connector and timestamp. Only samples while current
    flows (at least 1 A) count: an idle connector sits at ambient.
    """
    records = await conn.fetch(
        """
        WITH cohort AS (
            SELECT charge_point_id FROM chargers WHERE model IS NOT DISTINCT FROM $1
        ), t AS (
            SELECT m.charge_point_id, m.evse_id, m.sampled_at, max(m.value) AS temp
            FROM meter_samples m JOIN cohort USING (charge_point_id)
            WHERE m.measurand = 'Temperature' AND m.sampled_at >= $2 AND m.evse_id > 0
            GROUP BY 1, 2, 3
        ), i AS (
            SELECT m.charge_point_id, m.evse_id, m.sampled_at, max(m.value) AS amps
            FROM meter_samples m JOIN cohort USING (charge_point_id)
            WHERE m.measurand = 'Current.Import' AND m.sampled_at >= $2 AND m.evse_id > 0
            GROUP BY 1, 2, 3
        )
        SELECT t.charge_point_id, t.evse_id, (t.sampled_at AT TIME ZONE 'UTC')::date AS day,
               floor(i.amps / $3)::int AS band, avg(t.temp) AS mean_c, count(*) AS n
        FROM t JOIN i USING (charge_point_id, evse_id, sampled_at)
        WHERE i.amps >= 1
        GROUP BY 1, 2, 3, 4
        """,
        model,
        since,
        band_a,
    )
    return [
        TemperatureCell(
            (r["charge_point_id"], r["evse_id"]), r["day"], r["band"], r["mean_c"], r["n"]
        )
        for r in records
    ]


async def charger_stats(
    conn: Executor, since: datetime, days: float, charge_point_id: str | None = None
) -> dict[str, ChargerStats]:
    """Faults, reboots, sessions (and failed ones) and open alerts per charger since ``since``."""
    records = await conn.fetch(
        """
        WITH c AS (
            SELECT charge_point_id FROM chargers WHERE $2::text IS NULL OR charge_point_id = $2
        ), ev AS (
            SELECT e.charge_point_id,
                   count(*) FILTER (WHERE e.type = 'connector_status_changed'
                                    AND e.payload->>'status' = 'Faulted') AS faults,
                   count(*) FILTER (WHERE e.type = 'charger_booted') AS reboots
            -- The durable log: the outbox (events) keeps a week, health looks further.
            FROM event_history e JOIN c USING (charge_point_id)
            WHERE e.occurred_at >= $1 AND e.recorded_at >= $1::timestamptz - interval '1 day'
              AND e.type IN ('connector_status_changed', 'charger_booted')
            GROUP BY 1
        ), s AS (
            SELECT s.charge_point_id, count(*) AS sessions,
                   count(*) FILTER (WHERE s.ended_at - s.started_at < interval '60 seconds'
                                    OR COALESCE(s.energy_wh, 0) <= 0) AS failed
            FROM sessions s JOIN c USING (charge_point_id)
            WHERE s.status = 'ended' AND s.started_at >= $1
            GROUP BY 1
        ), a AS (
            SELECT a.charge_point_id,
                   count(*) FILTER (WHERE a.severity = 'critical') AS critical,
                   count(*) FILTER (WHERE a.severity <> 'critical') AS warning
            FROM alerts a JOIN c USING (charge_point_id)
            WHERE a.status <> 'resolved'
            GROUP BY 1
        )
        SELECT c.charge_point_id, COALESCE(ev.faults, 0) AS faults,
               COALESCE(ev.reboots, 0) AS reboots, COALESCE(s.sessions, 0) AS sessions,
               COALESCE(s.failed, 0) AS failed, COALESCE(a.critical, 0) AS critical,
               COALESCE(a.warning, 0) AS warning
        FROM c LEFT JOIN ev USING (charge_point_id) LEFT JOIN s USING (charge_point_id)
               LEFT JOIN a USING (charge_point_id)
        """,
        since,
        charge_point_id,
    )
    return {
        r["charge_point_id"]: ChargerStats(
            days=days,
            faults=r["faults"],
            reboots=r["reboots"],
            sessions=r["sessions"],
            failed_sessions=r["failed"],
            open_critical_alerts=r["critical"],
            open_warning_alerts=r["warning"],
        )
        for r in records
    }


async def assess(
    conn: Executor, since: datetime, days: float, charge_point_id: str | None = None
) -> dict[str, tuple[str | None, Health]]:
    """Model and :class:`Health` of one charger (or all): the queries above, then the score."""
    stats = await charger_stats(conn, since, days, charge_point_id)
    model_of = await models(conn, None if charge_point_id is None else [charge_point_id])
    excess_by_model: dict[str | None, dict[ConnectorKey, dict[date, float]]] = {}
    out: dict[str, tuple[str | None, Health]] = {}
    for cp_id, charger in stats.items():
        model = model_of.get(cp_id)
        if model not in excess_by_model:
            excess_by_model[model] = daily_excess(await temperature_cells(conn, model, since))
        excess = excess_by_model[model]
        drifts = [
            drift
            for key in sorted(k for k in excess if k[0] == cp_id)
            if (drift := temperature_drift(key, excess, model)) is not None
        ]
        out[cp_id] = (model, health(charger, drifts))
    return out
