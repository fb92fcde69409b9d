-- Queries that run on a timer or per charger message must cost what they return, not
-- the size of the history (docs/database.md). Plain CREATE INDEX, like every migration
-- here: it blocks writes to the table while it builds (seconds per million rows). On a
-- large live database create them beforehand with CREATE INDEX CONCURRENTLY, same names
-- and definitions; IF NOT EXISTS then makes these statements do nothing.

-- Sessions changed lately, for the analytics rollup (csms/dashboard/rollup.py) and the
-- billing sweeper (billing/cdrs.py): both read "ended sessions changed since ...".
-- BRIN, not B-tree: every meter value updates its session's updated_at, and a B-tree
-- over a changing column would end the HOT updates of those rows (each update would then
-- write every index of sessions); a BRIN index does not (PostgreSQL 16 and later). Rows
-- are written in time order, so a block range holds sessions of a few hours.
CREATE INDEX IF NOT EXISTS sessions_updated_at ON sessions USING brin (updated_at)
    WITH (autosummarize = on);

-- The newest rollup: where the rollup's next round starts.
CREATE INDEX IF NOT EXISTS analytics_sessions_rolled_up_at ON analytics_sessions (rolled_up_at);

-- A CDR (and a running cost) prices a session's idle and charging time from its state
-- changes (billing/usage.py): that charger's session and status events that carry a
-- state, between the session's start and end. events_charger (charge_point_id, id) read
-- every event the charger ever sent to find them; this one reads the window. Only events
-- with a state are in it: a periodic meter update without chargingState pays nothing.
CREATE INDEX IF NOT EXISTS events_charger_states ON events (charge_point_id, occurred_at)
    WHERE type IN ('session_updated', 'connector_status_changed')
      AND COALESCE(payload->>'charging_state', payload->>'detail') IS NOT NULL;

-- Is this id token charging elsewhere? (csms/storage/concurrency.py: every Authorize and
-- start of a transaction.) sessions_id_token reads every session the token ever had --
-- a fleet card's history -- and sessions_active every open session; this one reads the
-- token's open sessions. Neither column changes on a meter update (HOT updates stay).
CREATE INDEX IF NOT EXISTS sessions_active_token ON sessions (lower(id_token))
    WHERE status = 'active';

-- Intervals that overlap a window [start, end): started before its end and not ended
-- before its start. The indexes on the start alone read every interval that began
-- before the window's end -- all the history; these read the ones that ended after its
-- start (the open ones through the existing partial indexes on "ended_at IS NULL").
-- The dashboard's analytics (csms/dashboard/analytics.py) and the availability report
-- (csms/monitoring/connectivity_store.py). ended_at is set once, when the row closes.
CREATE INDEX IF NOT EXISTS sessions_ended_at ON sessions (ended_at);
CREATE INDEX IF NOT EXISTS connector_status_history_ended
    ON connector_status_history (charge_point_id, ended_at);
CREATE INDEX IF NOT EXISTS charger_downtime_ended ON charger_downtime (charge_point_id, ended_at);

-- Webhooks (csms/monitoring/webhook_store.py), every minute on every node: the catch-up
-- asks, per recent alert event, whether any delivery row exists -- by event_id, which
-- only the (subscription_id, event_id) key held, second: so it read every delivery of
-- the retained week. The prune deletes finished deliveries past their retention by
-- age, which no index held: a full read each minute. Finished rows only in the second
-- (pending ones are few and have their own index).
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE status <> 'pending';
