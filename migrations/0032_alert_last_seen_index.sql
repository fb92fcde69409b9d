-- migrate: no-transaction
-- Alerts seen since a time, newest first (GET /api/v1/alerts?since=..., with no charger,
-- rule or severity; csms/monitoring/alerts_store.py search). With no index on last_seen
-- the page walked the alerts newest first until it had its rows: with fewer than a page
-- in the range (the last minutes), every alert. As for sessions by start time (0029), a
-- GiST index (btree_gist, created by 0029) on (last_seen, id) gives the ids nearest below
-- the cursor among the alerts of the range (ORDER BY id <-> cursor): the page, whatever
-- the range holds.
-- last_seen moves when a finding folds into an unresolved alert, so such an update now
-- writes the alert's index entries (it was a HOT update): one per finding of a faulty
-- connector, not per charger message.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_last_seen_id ON alerts USING gist (last_seen, id);
