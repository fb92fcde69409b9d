-- Charger authentication (OCPP security profiles): the profile each charger is
-- held to and the argon2id hash of its Basic Auth password (profiles 1 and 2).
-- Profile 3 authenticates with a client certificate and needs no password.
ALTER TABLE chargers
    ADD COLUMN security_profile     integer NOT NULL DEFAULT 0
                                    CHECK (security_profile BETWEEN 0 AND 3),
    ADD COLUMN password_hash        text,
    ADD COLUMN password_changed_at  timestamptz,
    ADD CONSTRAINT chargers_password_for_profile
        CHECK (security_profile NOT IN (1, 2) OR password_hash IS NOT NULL);
