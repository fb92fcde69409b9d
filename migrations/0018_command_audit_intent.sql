-- Issue 15.4: a command's audit row is written before the call goes out (outcome
-- 'pending') and completed with whatever the charger answered; an answer that is
-- not valid OCPP ('invalid_answer') is kept as the charger sent it, in raw_answer.
ALTER TABLE command_audit DROP CONSTRAINT command_audit_outcome_check;
ALTER TABLE command_audit ADD CONSTRAINT command_audit_outcome_check
    CHECK (outcome IN ('pending', 'answered', 'call_error', 'invalid_answer', 'timeout',
                       'not_connected', 'rejected_by_csms'));
ALTER TABLE command_audit ADD COLUMN raw_answer text;
ALTER TABLE command_audit ALTER COLUMN duration_ms DROP NOT NULL;
