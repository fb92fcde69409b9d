-- A site's allocation policy (smart_charging/policies.py): the order and share of current
-- inside one operator priority class. 'fair' (the default): deadline urgency with
-- hysteresis, then max-min fair sharing; the classic greedy orders 'edf' (earliest
-- departure first), 'llf' (least laxity first), 'fcfs' (first come first served) and
-- 'round-robin' (arrival order rotated every 15 minutes) give each session its maximum
-- in that order while it fits. Limits, the minimum current and operator classes hold
-- under every policy.
ALTER TABLE sc_sites ADD COLUMN allocation_policy text NOT NULL DEFAULT 'fair'
    CHECK (allocation_policy IN ('fair', 'edf', 'llf', 'fcfs', 'round-robin'));
