-- A charger's billing scopes -- its site (for site-scoped tariffs) and the most power it
-- can deliver (meter steps implying more are flagged) -- in ONE read of smart charging's
-- sc_charger_sites. billing_charger_site and billing_charger_max_power_w (0005) read the
-- same row twice, each by dynamic SQL (planned again at every call), inside the read that
-- prices a session at its end. Static SQL in PL/pgSQL is planned once per connection; it
-- is only reached when the table exists, so billing still needs no foreign key into it.
CREATE FUNCTION billing_charger_scope(cp text, OUT site_id text, OUT max_power_w double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF to_regclass('sc_charger_sites') IS NULL THEN
        RETURN;
    END IF;
    -- Amperes per line x 230 V x lines (the convention of migration 0006).
    SELECT s.site_id::text, NULLIF(COALESCE(s.connector_max_current_a, s.max_current_a)
                                   * 230 * s.phases, 0)
    INTO site_id, max_power_w
    FROM sc_charger_sites s WHERE s.charge_point_id = cp;
END $$;
