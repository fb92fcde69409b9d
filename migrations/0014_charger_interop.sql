-- What the CSMS has learned about each charger's OCPP support (csms/interop):
-- the actions it does not implement and the charging-rate units it accepts.

-- An action the charger does not take: it answered a CALL of it with CALLERROR
-- NotImplemented/NotSupported ('call_error'), or its device model says it lacks
-- the feature ('device_model', e.g. no TariffCostCtrlr for CostUpdated). The
-- CSMS stops sending what it can do without (CostUpdated); an operator's command
-- is still sent. A charger that boots other firmware is given a fresh chance.
CREATE TABLE charger_unsupported_actions (
    charge_point_id   text NOT NULL REFERENCES chargers ON DELETE CASCADE,
    action            text NOT NULL,  -- the OCPP action, e.g. CostUpdated
    source            text NOT NULL CHECK (source IN ('call_error', 'device_model')),
    detail            text NOT NULL,  -- the CALLERROR code or the variable that said so
    firmware_version  text,           -- the charger's firmware when it was learned
    learned_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (charge_point_id, action)
);

-- The units a charger accepts in a charging schedule, from 1.6
-- ChargingScheduleAllowedChargingRateUnit or 2.0.1 SmartChargingCtrlr.RateUnit.
-- No row (or no units): not known, profiles are sent in the unit they were built in.
CREATE TABLE charger_rate_units (
    charge_point_id  text PRIMARY KEY REFERENCES chargers ON DELETE CASCADE,
    units            text[] NOT NULL CHECK (units <@ ARRAY['A', 'W']::text[]),
    source           text NOT NULL,  -- the configuration key / variable read
    learned_at       timestamptz NOT NULL DEFAULT now()
);
