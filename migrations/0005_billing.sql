-- Billing (billing/): tariffs, where each applies, and one immutable charge
-- detail record (CDR, after OCPI 2.2.1) per finished session.

-- A tariff never changes once created: a CDR's tariff_id always means the
-- prices it was computed with. To change prices, create a tariff and assign it.
-- Prices are net of tax, in the tariff's currency (numeric: never floats).
CREATE TABLE tariffs (
    id                         bigserial PRIMARY KEY,
    name                       text NOT NULL,
    currency                   text NOT NULL,
    time_zone                  text NOT NULL DEFAULT 'UTC',  -- the site's; periods are wall times in it
    price_per_kwh              numeric NOT NULL DEFAULT 0 CHECK (price_per_kwh >= 0),
    price_per_charging_minute  numeric NOT NULL DEFAULT 0 CHECK (price_per_charging_minute >= 0),
    price_per_parking_minute   numeric NOT NULL DEFAULT 0 CHECK (price_per_parking_minute >= 0),
    parking_grace_minutes      numeric NOT NULL DEFAULT 0 CHECK (parking_grace_minutes >= 0),
    flat_fee                   numeric NOT NULL DEFAULT 0 CHECK (flat_fee >= 0),
    min_price                  numeric CHECK (min_price >= 0),
    max_price                  numeric CHECK (max_price >= min_price),
    vat_rate                   numeric NOT NULL DEFAULT 0 CHECK (vat_rate >= 0),
    -- time-of-use energy prices: [{"name", "price_per_kwh", "start", "end", "weekdays"}]
    periods                    jsonb NOT NULL DEFAULT '[]',
    created_at                 timestamptz NOT NULL DEFAULT now()
);

-- Which tariff applies where; the most specific wins: the driver's id-token
-- group (id_tokens.group_id), then the charger, then its site, then default.
-- scope_id is a site id, a charge_point_id or a group id ('' for default); a
-- site id is text with no foreign key, so sites can live in another subsystem.
CREATE TABLE tariff_assignments (
    scope        text NOT NULL CHECK (scope IN ('token_group', 'charger', 'site', 'default')),
    scope_id     text NOT NULL,
    tariff_id    bigint NOT NULL REFERENCES tariffs,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, scope_id),
    CHECK ((scope = 'default') = (scope_id = ''))
);

-- The site of a charger, for site-scoped tariffs, and the most power it can
-- deliver (meter steps implying more are flagged); NULL when not known. Both
-- come from smart charging's sc_charger_sites (migration 0006) when that
-- table exists: dynamic SQL, so billing needs no foreign key into it.
CREATE FUNCTION billing_charger_site(cp text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    site text;
BEGIN
    IF to_regclass('sc_charger_sites') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT site_id::text FROM sc_charger_sites WHERE charge_point_id = $1'
        INTO site USING cp;
    RETURN site;
END $$;

-- Amperes per line x 230 V x lines (the convention of migration 0006).
CREATE FUNCTION billing_charger_max_power_w(cp text) RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
DECLARE
    watts double precision;
BEGIN
    IF to_regclass('sc_charger_sites') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT NULLIF(COALESCE(connector_max_current_a, max_current_a) * 230 * phases, 0)
             FROM sc_charger_sites WHERE charge_point_id = $1'
        INTO watts USING cp;
    RETURN watts;
END $$;

-- One CDR per finished session, written in the transaction that ends it.
CREATE TABLE cdrs (
    id                bigserial PRIMARY KEY,
    session_id        bigint NOT NULL UNIQUE REFERENCES sessions,
    charge_point_id   text NOT NULL,
    evse_id           integer,
    connector_id      integer,
    transaction_id    text NOT NULL,
    protocol          text NOT NULL,
    id_token          text,
    token_group       text,
    site_id           text,
    tariff_id         bigint REFERENCES tariffs,  -- NULL: no tariff applied, nothing charged
    tariff_scope      text,                       -- the assignment that chose it
    start_at          timestamptz NOT NULL,
    end_at            timestamptz NOT NULL,
    currency          text NOT NULL,
    meter_start_wh    numeric,
    meter_stop_wh     numeric,
    total_energy_wh   numeric NOT NULL,           -- billed: from the register, anomalies left out
    energy_by_period  jsonb NOT NULL,             -- {"base": "1234.5", "peak": ...} Wh
    charging_seconds  numeric NOT NULL,
    parking_seconds   numeric NOT NULL,           -- all idle time, grace included
    items             jsonb NOT NULL,             -- the itemised price, amounts as strings
    total_net         numeric NOT NULL,
    total_tax         numeric NOT NULL,
    total_cost        numeric NOT NULL,
    flags             text[] NOT NULL DEFAULT '{}',
    stop_reason       text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cdrs_end_at ON cdrs (end_at);
CREATE INDEX cdrs_charger ON cdrs (charge_point_id, end_at);

CREATE FUNCTION billing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER cdrs_immutable BEFORE UPDATE OR DELETE ON cdrs
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();
CREATE TRIGGER tariffs_immutable BEFORE UPDATE OR DELETE ON tariffs
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();
