-- Smart charging, time of use (smart_charging/shifting.py): an optional daily
-- price schedule per site. Sessions with a departure time and energy wanted
-- are shifted to its cheapest hours. One row per site: the IANA time zone the
-- times of day are in, and the entries [{"start": "HH:MM[:SS]", "price": x}],
-- each in force from its start until the next one's (wrapping round midnight).

CREATE TABLE sc_price_schedules (
    site_id     text PRIMARY KEY REFERENCES sc_sites ON DELETE CASCADE,
    time_zone   text NOT NULL DEFAULT 'UTC',
    entries     jsonb NOT NULL CHECK (jsonb_typeof(entries) = 'array'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
