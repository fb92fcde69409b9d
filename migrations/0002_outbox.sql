-- The event log doubles as the transactional outbox for Kafka fan-out
-- (csms/outbox): an event is "unpublished" until the relay has had every
-- message built from it acknowledged by the broker (acks=all).

-- NULL: not yet published. The relay marks rows one by one (never a
-- watermark), because ids are assigned at insert, not at commit.
ALTER TABLE events ADD COLUMN published_at timestamptz;

-- What the state change produced that the event itself does not carry; for
-- session events the session row after the change (start/end, meter
-- readings, energy, stop reason), written in the same statement as the event.
ALTER TABLE events ADD COLUMN context jsonb;

-- Events recorded before the outbox existed are history, not news.
UPDATE events SET published_at = recorded_at;

CREATE INDEX events_unpublished ON events (id) WHERE published_at IS NULL;
CREATE INDEX events_recorded_at ON events (recorded_at);
