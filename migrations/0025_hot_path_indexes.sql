-- What a charger's call writes (docs/database.md, "What a call writes"): every row
-- inserted into a table writes an entry into each of its indexes, in WAL and in CPU,
-- and most calls insert an event and eight meter samples. Indexes that the charger
-- path's bulk rows (meter values, periodic transaction updates) pay for but no query
-- reads them through are narrowed here to the rows their queries read.

-- meter_samples (charge_point_id, sampled_at) served one query: the fleet health
-- report's temperature cells (csms/monitoring/health_store.py temperature_cells), which
-- reads a cohort's Temperature and Current.Import samples since a day. Every other
-- read of meter_samples goes through the session (meter_samples_session). Three of a
-- typical meter value's eight samples are currents: the other five no longer pay.
CREATE INDEX IF NOT EXISTS meter_samples_charger_health ON meter_samples (charge_point_id, sampled_at)
    WHERE measurand IN ('Temperature', 'Current.Import');
DROP INDEX IF EXISTS meter_samples_charger;

-- events (type, occurred_at) was written for every event and read for two kinds:
-- the dashboard's site load history (csms/dashboard/queries.py, type
-- 'load_plan_computed' of one site) and, by range, nothing else (charging_limit_set has
-- events_limit_set_site; per-charger reads use events_charger). Meter values and
-- transaction updates -- nearly every event -- were never read by type and time.
CREATE INDEX IF NOT EXISTS events_site_load_plans ON events (charge_point_id, occurred_at)
    WHERE type = 'load_plan_computed';
-- The webhooks' catch-up (csms/monitoring/webhook_store.py, every minute on every node)
-- looked for alert events among every event of the last ten minutes (events_recorded_at);
-- this reads the alert events alone. Its predicate is the query's condition, verbatim.
CREATE INDEX IF NOT EXISTS events_alerts_recorded ON events (recorded_at)
    WHERE type LIKE 'alert\_%';
DROP INDEX IF EXISTS events_type_time;

-- HOT updates: an update that changes no indexed column writes no index entry, but only
-- if the new row version fits on the same page. The charger path updates chargers
-- (last seen, in batches), connectors (status) and open sessions (every meter value);
-- full pages turned a share of those updates into new index entries in every index.
-- Free space on each page keeps them HOT. chargers and connectors are fleet-sized;
-- sessions pages with history are never updated again (the space is only spent on the
-- pages new sessions go to). Applies to pages filled from now on; `VACUUM FULL chargers,
-- connectors` applies it to the existing ones at once (a short exclusive lock).
ALTER TABLE chargers SET (fillfactor = 50);
ALTER TABLE connectors SET (fillfactor = 70);
ALTER TABLE sessions SET (fillfactor = 80);
