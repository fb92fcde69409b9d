-- Fault detection (csms/monitoring): alerts and per-model / per-charger thresholds.

-- One row per alert: opened by a rule's first finding, deduplicated while open
-- (count, last_seen and the capped evidence move), resolved automatically once
-- the condition has been clear for a hold time, or by an operator.
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL,
    evse_id          integer,  -- NULL: the charger as a whole
    connector_id     integer,
    rule             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'acknowledged', 'resolved')),
    message          text NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    count            integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    evidence         jsonb NOT NULL DEFAULT '[]'::jsonb,  -- first findings and the latest
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,  -- 'auto' or 'api:<key name>'
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- At most one unresolved alert per charger, connector and rule: the dedup key.
CREATE UNIQUE INDEX alerts_one_unresolved
    ON alerts (charge_point_id, COALESCE(evse_id, -1), COALESCE(connector_id, -1), rule)
    WHERE status <> 'resolved';
CREATE INDEX alerts_by_charger ON alerts (charge_point_id, id DESC);
CREATE INDEX alerts_unresolved ON alerts (id DESC) WHERE status <> 'resolved';

-- Threshold overrides (names of csms.monitoring.rules.Thresholds fields), applied
-- on top of the defaults: the site's (smart charging's sites), the charger model's,
-- then the charger's own.
CREATE TABLE alert_thresholds (
    scope       text NOT NULL CHECK (scope IN ('site', 'model', 'charger')),
    key         text NOT NULL,  -- site id, model name (chargers.model) or charge point id
    overrides   jsonb NOT NULL CHECK (jsonb_typeof(overrides) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
