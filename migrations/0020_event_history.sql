-- Issue 15.6: the durable event log, apart from the outbox. `events` is the
-- transactional outbox and is pruned once published (outbox_retention_hours);
-- what operators need for a year -- boots, security events, firmware and log
-- uploads, connections and connector states -- is copied here by a trigger in the
-- same transaction, whoever appends the event. Partitioned by month of
-- recorded_at, so retention (history_retention_days) drops whole partitions;
-- csms/storage/history.py creates the coming months' partitions.
CREATE TABLE event_history (
    id               bigint NOT NULL,
    event_id         uuid NOT NULL,
    type             text NOT NULL,
    charge_point_id  text NOT NULL,
    evse_id          integer,
    connector_id     integer,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    payload          jsonb NOT NULL,
    PRIMARY KEY (recorded_at, id)
) PARTITION BY RANGE (recorded_at);
CREATE TABLE event_history_default PARTITION OF event_history DEFAULT;
CREATE INDEX event_history_charger ON event_history (charge_point_id, recorded_at);
CREATE INDEX event_history_type ON event_history (type, recorded_at);

CREATE FUNCTION csms_event_history_partition(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'event_history_' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event_history FOR VALUES FROM (%L) TO (%L)',
            name, first::timestamptz, (first + interval '1 month')::timestamptz);
    END IF;
    RETURN name;
END $$;

SELECT csms_event_history_partition((now() + make_interval(months => m))::date)
FROM generate_series(0, 2) AS m;

CREATE FUNCTION csms_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_history (id, event_id, type, charge_point_id, evse_id, connector_id,
                               occurred_at, recorded_at, payload)
    VALUES (NEW.id, NEW.event_id, NEW.type, NEW.charge_point_id, NEW.evse_id,
            NEW.connector_id, NEW.occurred_at, NEW.recorded_at, NEW.payload);
    RETURN NULL;
END $$;
CREATE TRIGGER events_keep_history AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type IN ('charger_booted', 'security_event_reported', 'firmware_status_changed',
                       'upload_status_changed', 'charger_connected', 'charger_disconnected',
                       'connector_status_changed'))
    EXECUTE FUNCTION csms_keep_history();

-- What the outbox already holds of these types, so the history starts complete.
SELECT csms_event_history_partition(month::date)
FROM generate_series(date_trunc('month', (SELECT coalesce(min(recorded_at), now()) FROM events)),
                     now(), interval '1 month') AS month;
INSERT INTO event_history (id, event_id, type, charge_point_id, evse_id, connector_id,
                           occurred_at, recorded_at, payload)
SELECT id, event_id, type, charge_point_id, evse_id, connector_id, occurred_at, recorded_at,
       payload
FROM events
WHERE type IN ('charger_booted', 'security_event_reported', 'firmware_status_changed',
               'upload_status_changed', 'charger_connected', 'charger_disconnected',
               'connector_status_changed');
