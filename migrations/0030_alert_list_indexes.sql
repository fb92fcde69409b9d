-- migrate: no-transaction
-- The operator's alert lists (GET /api/v1/alerts, csms/monitoring/alerts_store.py search)
-- come newest first (ORDER BY id DESC) and page by id. Filtered by a rule or a severity
-- alone, a page walked the table newest first until it found its rows: the alerts of a
-- rule that fired months ago, or the rare critical ones, meant reading nearly every alert
-- (docs/database.md, "Filters"). Each index gives that page as a range read backwards.
-- Built concurrently: alerts are written while the CSMS runs.
-- rule never changes; severity follows the latest finding, rarely a different value.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_by_rule ON alerts (rule, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_by_severity ON alerts (severity, id);
