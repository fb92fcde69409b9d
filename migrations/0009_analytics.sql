-- Analytics pre-aggregation (csms/dashboard/rollup.py): each ended session's
-- register readings rolled up into UTC quarter hours, so analytics over weeks
-- of a large fleet read one row per session and quarter hour instead of every
-- meter sample. Day and hour buckets in any real time zone are made of whole
-- quarter hours, so the rollup loses nothing the analytics report.

-- Energy delivered and time spent charging (register going up) in one quarter hour.
CREATE TABLE analytics_session_slots (
    session_id  bigint NOT NULL REFERENCES sessions ON DELETE CASCADE,
    slot        timestamptz NOT NULL,  -- start of the quarter hour (aligned to UTC)
    energy_wh   double precision NOT NULL,
    charging_s  double precision NOT NULL,
    PRIMARY KEY (session_id, slot)
);
CREATE INDEX analytics_session_slots_slot ON analytics_session_slots (slot);

-- Which sessions are rolled up, and as of when: a session changed since
-- (sessions.updated_at moves with every reading, e.g. a late offline queue) is
-- read from the raw samples again until it is rolled up anew.
CREATE TABLE analytics_sessions (
    session_id      bigint PRIMARY KEY REFERENCES sessions ON DELETE CASCADE,
    last_charge_at  timestamptz,  -- the end of its last register increase; NULL: never charged
    rolled_up_at    timestamptz NOT NULL
);
