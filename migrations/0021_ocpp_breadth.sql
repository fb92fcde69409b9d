-- OCPP breadth (issue 16): what chargers report beyond sessions and status.
-- Rows are keyed by charger and die with it (ON DELETE CASCADE), like its sessions.

-- 2.0.1 device model, one row per component/variable/attribute as last known:
-- from NotifyReport (GetBaseReport/GetReport), GetVariables/SetVariables answers
-- and NotifyEvent actual values. Absent EVSE / connector / instances are 0 / ''.
CREATE TABLE device_model_variables (
    charge_point_id     text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    component           text NOT NULL,
    component_instance  text NOT NULL DEFAULT '',
    evse_id             integer NOT NULL DEFAULT 0,
    connector_id        integer NOT NULL DEFAULT 0,
    variable            text NOT NULL,
    variable_instance   text NOT NULL DEFAULT '',
    attribute_type      text NOT NULL DEFAULT 'Actual',
    value               text,
    mutability          text,
    persistent          boolean,
    constant            boolean,
    characteristics     jsonb,
    attribute_status    text,           -- last GetVariables/SetVariables status, if any
    source              text NOT NULL,  -- NotifyReport, GetVariables, SetVariables, NotifyEvent
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, component, component_instance, evse_id, connector_id,
                 variable, variable_instance, attribute_type)
);

-- Progress of each device-model report (NotifyReport parts share a requestId).
CREATE TABLE device_model_reports (
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    request_id       integer NOT NULL,
    parts            integer NOT NULL DEFAULT 0,
    items            integer NOT NULL DEFAULT 0,
    last_seq_no      integer NOT NULL,
    complete         boolean NOT NULL DEFAULT false,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, request_id)
);

-- Variable monitors (N02-N08) as the charger reports them (NotifyMonitoringReport)
-- or accepted them (SetVariableMonitoring answers).
CREATE TABLE variable_monitors (
    charge_point_id     text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    monitor_id          integer NOT NULL,
    component           text NOT NULL,
    component_instance  text NOT NULL DEFAULT '',
    evse_id             integer NOT NULL DEFAULT 0,
    variable            text NOT NULL,
    variable_instance   text NOT NULL DEFAULT '',
    type                text NOT NULL,
    value               double precision NOT NULL,
    severity            integer NOT NULL,
    transaction         boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, monitor_id)
);

-- Report parts stored as reported: NotifyMonitoringReport, NotifyDisplayMessages,
-- NotifyCustomerInformation, ReportChargingProfiles, NotifyEVChargingSchedule,
-- PublishFirmwareStatusNotification.
CREATE TABLE charger_reports (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    action           text NOT NULL,
    request_id       integer,
    seq_no           integer,
    tbc              boolean NOT NULL DEFAULT false,
    evse_id          integer,
    data             jsonb NOT NULL,
    occurred_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX charger_reports_lookup ON charger_reports (charge_point_id, action, request_id, id);

-- ISO 15118 charging needs (NotifyEVChargingNeeds), the latest per EVSE: the
-- smart-charging planner reads departure time and energy from here.
CREATE TABLE ev_charging_needs (
    charge_point_id            text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    evse_id                    integer NOT NULL,
    requested_energy_transfer  text NOT NULL,
    departure_time             timestamptz,
    energy_amount_wh           double precision,
    max_schedule_tuples        integer,
    needs                      jsonb NOT NULL,
    reported_at                timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, evse_id)
);

-- Limits set outside the CSMS (NotifyChargingLimit), until ClearedChargingLimit.
-- evse_id 0: the whole charger.
CREATE TABLE external_charging_limits (
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    evse_id          integer NOT NULL DEFAULT 0,
    source           text NOT NULL,
    grid_critical    boolean,
    schedules        jsonb NOT NULL DEFAULT '[]',
    reported_at      timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, evse_id, source)
);

-- Charger certificates the CSMS's CA issued (SignCertificate -> CertificateSigned).
CREATE TABLE charger_certificates (
    id                bigserial PRIMARY KEY,
    charge_point_id   text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    certificate_type  text NOT NULL,
    serial_number     text NOT NULL,
    subject           text NOT NULL,
    certificate_pem   text NOT NULL,
    not_before        timestamptz NOT NULL,
    not_after         timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'Issued'
                      CHECK (status IN ('Issued', 'Accepted', 'Rejected', 'NotDelivered')),
    issued_at         timestamptz NOT NULL DEFAULT now(),
    answered_at       timestamptz
);
CREATE INDEX charger_certificates_charger ON charger_certificates (charge_point_id, id);

-- The built-in CA that signs charger certificates, made on first use. Kept here so
-- that every CSMS process and node signs with the same CA (unless CA files are
-- configured, see csms/certificates/authority.py).
CREATE TABLE certificate_authority (
    name             text PRIMARY KEY,
    certificate_pem  text NOT NULL,
    private_key_pem  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Log / diagnostics uploads to the CSMS's own receiver (GetLog, GetDiagnostics):
-- one row per request, found by the hash of the token in its upload URL. The file
-- is kept under the data folder of the node that received it (file_path).
CREATE TABLE log_uploads (
    id               bigserial PRIMARY KEY,
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    token_sha256     text NOT NULL UNIQUE,
    message          text NOT NULL CHECK (message IN ('GetLog', 'GetDiagnostics')),
    log_type         text NOT NULL,
    request_id       integer NOT NULL,
    requested_by     text NOT NULL,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    file_name        text,
    file_path        text,
    size_bytes       bigint,
    received_at      timestamptz
);
CREATE INDEX log_uploads_charger ON log_uploads (charge_point_id, id);

-- Password rotation (csms/api/password_rotation.py): the new password's hash is
-- pending while the charger is asked to take it, and the old one stays valid
-- (previous) until the charger has connected with the new one.
ALTER TABLE chargers
    ADD COLUMN pending_password_hash   text,
    ADD COLUMN previous_password_hash  text;

-- Firmware campaigns: one firmware for many chargers, with per-charger progress.
-- A target is claimed (sent_at) by the node its charger is connected to.
CREATE TABLE firmware_campaigns (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL,
    location             text NOT NULL,
    retrieve_at          timestamptz NOT NULL,
    install_at           timestamptz,
    signature            text,
    signing_certificate  text,
    retries              integer,
    retry_interval       integer,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    cancelled_at         timestamptz
);

CREATE TABLE firmware_campaign_targets (
    campaign_id      bigint NOT NULL REFERENCES firmware_campaigns ON DELETE CASCADE,
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    request_id       integer,
    sent_at          timestamptz,
    answer           text,           -- the charger's UpdateFirmware answer, or why none
    status           text,           -- its latest FirmwareStatusNotification
    status_at        timestamptz,
    PRIMARY KEY (campaign_id, charge_point_id)
);
CREATE INDEX firmware_campaign_targets_unsent
    ON firmware_campaign_targets (charge_point_id) WHERE sent_at IS NULL;

-- Security-profile upgrade (csms/api/security_upgrade.py): the profile a charger was
-- told to move to; it becomes security_profile once the charger connects with it.
ALTER TABLE chargers
    ADD COLUMN pending_security_profile integer
        CHECK (pending_security_profile IS NULL OR pending_security_profile IN (2, 3));

-- Display messages (O01-O06) a charger shows, as far as the CSMS knows: set by
-- SetDisplayMessage (Accepted), reported by NotifyDisplayMessages, removed by
-- ClearDisplayMessage (Accepted).
CREATE TABLE display_messages (
    charge_point_id  text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    message_id       integer NOT NULL,
    priority         text NOT NULL,
    state            text,
    content          text NOT NULL,
    message          jsonb NOT NULL,  -- the whole MessageInfoType (snake_case)
    source           text NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (charge_point_id, message_id)
);

-- The last NotifyEvent each monitor raised (N07: events tied to monitors).
ALTER TABLE variable_monitors
    ADD COLUMN last_event_at     timestamptz,
    ADD COLUMN last_event_value  text;
