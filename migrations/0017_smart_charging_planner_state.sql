-- Smart charging across nodes (smart_charging/planner_state.py): exactly one
-- node plans a site (a lease named "smart-charging:site:<id>"), and what it has
-- told the chargers lives here, so the node that takes over after a failover or
-- a restart resumes from it instead of from nothing.

-- What each session (one per EVSE) was told. A limit is written as pending
-- *before* its SetChargingProfile is sent and moved to limit_a when accepted,
-- so a planner that dies between the two leaves the worst case behind:
-- max(limit_a, pending_a, assumed_a) is what the EV may be drawing.
CREATE TABLE sc_session_limits (
    charge_point_id  text NOT NULL,
    evse_id          integer NOT NULL,
    transaction_id   text NOT NULL,
    site_id          text NOT NULL,
    limit_a          double precision,  -- A per line last accepted (NULL: none yet)
    pending_a        double precision,  -- A per line sent, answer not stored yet
    assumed_a        double precision,  -- not steerable: A per line it may draw
    phases           smallint NOT NULL DEFAULT 3,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charge_point_id, evse_id)
);
CREATE INDEX sc_session_limits_site ON sc_session_limits (site_id);

-- Per site: when a decrease was last accepted (no increase before it has settled,
-- whichever node sends it), which node planned last, and the last plan's view
-- (GET /api/v1/sites/{id}/load on any node).
CREATE TABLE sc_site_planner_state (
    site_id           text PRIMARY KEY REFERENCES sc_sites ON DELETE CASCADE,
    last_decrease_at  timestamptz,
    planner           text,
    lease_token       bigint,
    planned_at        timestamptz,
    view              jsonb
);

-- The failsafe profiles each charger accepted (ChargePointMaxProfile /
-- ChargingStationMaxProfile and TxDefaultProfile), forgotten at a reboot.
CREATE TABLE sc_fallback_state (
    charge_point_id  text PRIMARY KEY REFERENCES chargers ON DELETE CASCADE,
    max_limit_a      double precision,
    default_limit_a  double precision,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
