-- The cluster-wide feed of committed events (csms/cluster/feed.py, csms/bus.py).
--
-- Ids from the sequence are assigned at insert, not at commit, so a reader that
-- follows "id > last id" skips a row whose transaction commits after a newer
-- one. Each row therefore records the id of the transaction that wrote it; a
-- reader only takes rows whose transaction id is below the oldest transaction
-- still running (pg_snapshot_xmin of its snapshot): no transaction that could
-- still add a row before them is left, so a cursor (xact_id, id) never skips.

-- No default on ADD COLUMN: a volatile default would rewrite the whole table.
-- Rows written before this migration keep NULL (history; the feed starts at the tail).
ALTER TABLE events ADD COLUMN xact_id xid8;
ALTER TABLE events ALTER COLUMN xact_id SET DEFAULT pg_current_xact_id();
CREATE INDEX events_feed ON events (xact_id, id);

-- Where a once-per-cluster consumer (alert engine, history writers) got to, so
-- the node that takes its lease over resumes there: nothing skipped, at most
-- the last few events seen twice.
CREATE TABLE feed_cursors (
    name text PRIMARY KEY,
    xact_id xid8 NOT NULL,
    event_id bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
