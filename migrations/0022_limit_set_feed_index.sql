-- The alert engine follows smart charging's charging_limit_set events in feed order
-- (csms/monitoring/alerts_store.py charging_limits_after: position (xact_id, id), NULL
-- xact_id of rows older than the feed columns counting as 0) on every tick. Without an
-- index in that order it read and sorted every such event ever kept, a cost that grows
-- with the event log; this one makes each tick a short range scan.
CREATE INDEX events_limit_set_feed ON events ((coalesce(xact_id, '0'::xid8)), id)
    WHERE type = 'charging_limit_set';
