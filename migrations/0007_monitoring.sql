-- Fleet monitoring (csms/monitoring): connectivity history for availability
-- reports, and durable outgoing webhooks.

-- One row per interval a charger was offline; open (ended_at NULL) while it still is.
CREATE TABLE charger_downtime (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    reason           text NOT NULL,  -- "closed", "silent", "csms_down", ...
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX charger_downtime_open ON charger_downtime (charge_point_id)
    WHERE ended_at IS NULL;
CREATE INDEX charger_downtime_time ON charger_downtime (charge_point_id, started_at);

-- One row per interval a connector held one status; the current one is open.
CREATE TABLE connector_status_history (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    evse_id          integer NOT NULL,
    connector_id     integer NOT NULL,
    status           text NOT NULL,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX connector_status_history_open
    ON connector_status_history (charge_point_id, evse_id, connector_id) WHERE ended_at IS NULL;
CREATE INDEX connector_status_history_time
    ON connector_status_history (charge_point_id, started_at);

-- Who gets alerts by HTTP POST; empty filter arrays mean "every".
CREATE TABLE webhook_subscriptions (
    id           bigserial PRIMARY KEY,
    url          text NOT NULL,
    secret       text NOT NULL,  -- HMAC-SHA256 key; needed in clear to sign
    event_types  text[] NOT NULL DEFAULT '{}',
    severities   text[] NOT NULL DEFAULT '{}',
    rules        text[] NOT NULL DEFAULT '{}',
    description  text,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per (subscription, event): pending until delivered, retried with back-off.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,  -- the exact JSON that is signed and sent
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
