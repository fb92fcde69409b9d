-- Core schema: charger registry, connector state, id tokens, sessions,
-- meter samples and the event log every internal event is written to.

CREATE TABLE chargers (
    charge_point_id      text PRIMARY KEY,
    registration         text NOT NULL DEFAULT 'Accepted'
                         CHECK (registration IN ('Accepted', 'Pending', 'Rejected')),
    protocol             text,
    vendor               text,
    model                text,
    serial_number        text,
    firmware_version     text,
    iccid                text,
    imsi                 text,
    meter_type           text,
    meter_serial_number  text,
    last_boot_at         timestamptz,
    last_boot_reason     text,
    last_boot_status     text,
    connected            boolean NOT NULL DEFAULT false,
    connected_at         timestamptz,
    disconnected_at      timestamptz,
    last_seen_at         timestamptz,
    firmware_status      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One row per (EVSE, connector); a 1.6 connectorId N is stored as (N, N),
-- the whole charger as (0, 0).
CREATE TABLE connectors (
    charge_point_id    text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    evse_id            integer NOT NULL,
    connector_id       integer NOT NULL,
    status             text NOT NULL
                       CHECK (status IN ('Available', 'Occupied', 'Reserved', 'Unavailable', 'Faulted')),
    detail             text,
    error_code         text,
    info               text,
    vendor_error_code  text,
    status_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charge_point_id, evse_id, connector_id)
);

-- Id tokens are case-insensitive in both OCPP versions.
CREATE TABLE id_tokens (
    id_token    text NOT NULL,
    status      text NOT NULL DEFAULT 'Accepted'
                CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid')),
    expires_at  timestamptz,
    group_id    text,
    token_type  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX id_tokens_lower_key ON id_tokens (lower(id_token));

-- 1.6 transaction ids come from this sequence; 2.0.1 ids come from the charger.
CREATE SEQUENCE transaction_id_seq AS integer START 1;

CREATE TABLE sessions (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL REFERENCES chargers,
    protocol         text NOT NULL,
    transaction_id   text NOT NULL,
    evse_id          integer,
    connector_id     integer,
    id_token         text,
    token_type       text,
    auth_status      text,
    reservation_id   integer,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    started_at       timestamptz,
    ended_at         timestamptz,
    -- Energy comes from the meter register: the start reading (1.6 meterStart or
    -- the earliest register sample), the latest reading, and the stop reading.
    meter_start_wh   double precision,
    meter_start_at   timestamptz,
    meter_last_wh    double precision,
    meter_last_at    timestamptz,
    meter_stop_wh    double precision,
    energy_wh        double precision
                     GENERATED ALWAYS AS (COALESCE(meter_stop_wh, meter_last_wh) - meter_start_wh) STORED,
    stop_reason      text,
    stop_id_token    text,
    last_seq_no      integer,
    charging_state   text,
    -- true when the CSMS saw this transaction's update or end but never its start;
    -- started_at is then the earliest time seen for it
    start_unknown    boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (charge_point_id, transaction_id)
);
CREATE INDEX sessions_active ON sessions (charge_point_id, evse_id) WHERE status = 'active';
CREATE INDEX sessions_started_at ON sessions (started_at);
CREATE INDEX sessions_id_token ON sessions (lower(id_token));

CREATE TABLE meter_samples (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL,
    session_id       bigint REFERENCES sessions,
    evse_id          integer,
    connector_id     integer,
    sampled_at       timestamptz NOT NULL,
    measurand        text NOT NULL,
    phase            text,
    location         text,
    context          text,
    value            double precision NOT NULL,
    unit             text,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meter_samples_session ON meter_samples (session_id, sampled_at);
CREATE INDEX meter_samples_charger ON meter_samples (charge_point_id, sampled_at);

-- Every internal event, in the order the CSMS recorded it.
CREATE TABLE events (
    id               bigserial PRIMARY KEY,
    event_id         uuid NOT NULL UNIQUE,
    type             text NOT NULL,
    charge_point_id  text NOT NULL,
    evse_id          integer,
    connector_id     integer,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    payload          jsonb NOT NULL
);
CREATE INDEX events_charger ON events (charge_point_id, id);
CREATE INDEX events_type_time ON events (type, occurred_at);
