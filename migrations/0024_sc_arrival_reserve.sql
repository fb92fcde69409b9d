-- Capacity a site holds back from its sessions for arrivals (smart_charging/arrivals.py):
-- A per line the planner leaves to the idle chargers' TxDefaultProfiles, so that a new
-- session starts at once at up to that current instead of waiting for its first plan.
-- 0 (the default): every ampere goes to the sessions present; an arrival starts at the
-- headroom they leave (0 A on a full site) and gets its share after one plan.
ALTER TABLE sc_sites ADD COLUMN arrival_reserve_a double precision NOT NULL DEFAULT 0
    CHECK (arrival_reserve_a >= 0);
