-- Failsafe fallback (smart_charging/failsafe.py): a site's fallback_current_a unset
-- (NULL, the new default) means every charger's TxDefaultProfile is its failsafe
-- share of the site's limits, so the site stays under its limit even if every
-- charger falls back at once; a number keeps the operator's fixed value. Existing
-- rows keep the value stored (an operator's 0 A stays 0 A).
ALTER TABLE sc_sites ALTER COLUMN fallback_current_a DROP NOT NULL;
ALTER TABLE sc_sites ALTER COLUMN fallback_current_a SET DEFAULT NULL;
