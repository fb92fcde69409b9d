-- Operator API: API keys (stored hashed) and the audit trail of every command.

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('operator', 'read-only')),
    -- SHA-256 of the key: keys are 256-bit random strings, so a fast hash is
    -- enough (nothing to brute-force) and lookups stay one index probe.
    key_hash    text NOT NULL UNIQUE,
    key_prefix  text NOT NULL,  -- first characters, to tell keys apart in listings
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    last_used_at timestamptz
);

CREATE TABLE command_audit (
    id               bigserial PRIMARY KEY,
    api_key_id       bigint REFERENCES api_keys,
    actor            text NOT NULL,
    charge_point_id  text NOT NULL,
    command          text NOT NULL,
    protocol         text,
    request          jsonb NOT NULL,
    -- answered: the charger sent a CALLRESULT; call_error: a CALLERROR;
    -- timeout / not_connected / rejected_by_csms: no answer from the charger.
    outcome          text NOT NULL
                     CHECK (outcome IN ('answered', 'call_error', 'timeout', 'not_connected',
                                        'rejected_by_csms')),
    response         jsonb,
    error            text,
    requested_at     timestamptz NOT NULL,
    duration_ms      double precision NOT NULL
);
CREATE INDEX command_audit_charger ON command_audit (charge_point_id, requested_at);

-- Ids the CSMS picks for requests that need one (2.0.1 remoteStartId, requestId,
-- reservation ids): unique across chargers, so a reply can always be traced back.
CREATE SEQUENCE command_request_id_seq AS integer START 1;
