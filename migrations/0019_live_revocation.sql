-- Issue 15.4: a registration change or a token that stops being Accepted applies to
-- live connections at once, on every node: whoever writes the row (API, CLI, SQL),
-- Postgres tells every listening CSMS process (csms/revocation.py).
CREATE FUNCTION csms_notify_registration() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.registration IS DISTINCT FROM OLD.registration THEN
        PERFORM pg_notify('csms_revocation', json_build_object(
            'kind', 'registration', 'charge_point_id', NEW.charge_point_id)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chargers_registration_changed AFTER INSERT OR UPDATE OF registration
    ON chargers FOR EACH ROW EXECUTE FUNCTION csms_notify_registration();

CREATE FUNCTION csms_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'Accepted' AND (TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status)
    THEN
        PERFORM pg_notify('csms_revocation', json_build_object(
            'kind', 'token', 'id_token', NEW.id_token)::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER id_tokens_status_changed AFTER INSERT OR UPDATE OF status
    ON id_tokens FOR EACH ROW EXECUTE FUNCTION csms_notify_token();
