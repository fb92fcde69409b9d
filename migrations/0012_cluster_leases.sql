-- Named cluster-wide leases (csms/cluster/leases.py). The lock itself is a
-- Postgres session advisory lock held by the leader's dedicated connection;
-- this table only records who holds each lease and hands out a fencing token
-- that grows by one at every change of holder, so work done under an old
-- lease can be recognised and refused.
CREATE TABLE cluster_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
