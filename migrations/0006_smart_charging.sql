-- Smart charging (smart_charging/): sites with grid limits, nested groups, which
-- charger hangs where, and per-session preferences. Currents are ampere per
-- phase; power limits are kW over all three lines (converted at 230 V).

CREATE TABLE sc_sites (
    site_id              text PRIMARY KEY,
    name                 text,
    phase_limit_a        double precision CHECK (phase_limit_a >= 0),     -- per line; NULL = none
    power_limit_kw       double precision CHECK (power_limit_kw >= 0),    -- all lines; NULL = none
    -- A demand-response cut lowers the per-line limit until it expires (NULL = none).
    dr_limit_a           double precision CHECK (dr_limit_a >= 0),
    dr_until             timestamptz,
    min_current_a        double precision NOT NULL DEFAULT 6 CHECK (min_current_a >= 0),
    -- TxDefaultProfile sent at boot: what a session may draw before (or without) the CSMS.
    fallback_current_a   double precision NOT NULL DEFAULT 0 CHECK (fallback_current_a >= 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Feeders, circuits, ... nested under the site (parent_id NULL) or another group.
CREATE TABLE sc_groups (
    site_id          text NOT NULL REFERENCES sc_sites ON DELETE CASCADE,
    group_id         text NOT NULL,
    parent_id        text,
    name             text,
    phase_limit_a    double precision CHECK (phase_limit_a >= 0),
    power_limit_kw   double precision CHECK (power_limit_kw >= 0),
    PRIMARY KEY (site_id, group_id),
    FOREIGN KEY (site_id, parent_id) REFERENCES sc_groups (site_id, group_id) ON DELETE CASCADE,
    CHECK (parent_id IS NULL OR parent_id <> group_id)
);

-- A charger's place in a site: its own limit, its connectors' limit, phases, priority.
CREATE TABLE sc_charger_sites (
    charge_point_id          text PRIMARY KEY REFERENCES chargers ON DELETE CASCADE,
    site_id                  text NOT NULL REFERENCES sc_sites ON DELETE CASCADE,
    group_id                 text,
    max_current_a            double precision NOT NULL DEFAULT 32 CHECK (max_current_a >= 0),
    connector_max_current_a  double precision CHECK (connector_max_current_a >= 0),
    phases                   smallint NOT NULL DEFAULT 3 CHECK (phases IN (1, 3)),
    priority                 integer NOT NULL DEFAULT 0,
    FOREIGN KEY (site_id, group_id) REFERENCES sc_groups (site_id, group_id) ON DELETE SET NULL (group_id)
);
CREATE INDEX sc_charger_sites_site ON sc_charger_sites (site_id);

-- What a driver or fleet asks of one session (priority, departure, energy wanted).
CREATE TABLE sc_session_preferences (
    charge_point_id   text NOT NULL,
    transaction_id    text NOT NULL,
    priority          integer,
    departure_at      timestamptz,
    energy_wanted_wh  double precision CHECK (energy_wanted_wh >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charge_point_id, transaction_id)
);
