-- The dashboard's site history (csms/dashboard/queries.py site_profiles_sent) lists the
-- profiles the load manager sent for one site: smart charging's charging_limit_set
-- events, whose charge_point_id is the charger, the site only in the payload. A partial
-- index over those events alone keeps that lookup off the rest of the event log.
CREATE INDEX events_limit_set_site ON events ((payload->>'site_id'), occurred_at)
    WHERE type = 'charging_limit_set';
