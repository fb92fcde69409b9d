-- Cluster: every csms on this database is a node; which node holds each charger's
-- socket (presence, fenced by a connection generation); commands forwarded between nodes.

-- One row per live node, renewed every lease/3; a row whose lease has expired is a
-- dead node, reaped (its chargers marked offline) by any surviving node.
CREATE TABLE nodes (
    node_id             text PRIMARY KEY,
    host                text NOT NULL,
    pid                 integer NOT NULL,
    -- boot id and pid namespace: two nodes with the same pid_scope see each other's
    -- processes, so a node can tell that one of them died without waiting for its lease
    pid_scope           text NOT NULL DEFAULT '',
    version             text NOT NULL,
    api_url             text,
    ocpp_url            text,
    draining            boolean NOT NULL DEFAULT false,
    sockets_open        integer NOT NULL DEFAULT 0,  -- as counted at the last renewal
    started_at          timestamptz NOT NULL DEFAULT now(),
    renewed_at          timestamptz NOT NULL DEFAULT now(),
    lease_expires_at    timestamptz NOT NULL
);

-- A new value for every accepted charger connection: the fencing token that lets
-- only the connection holding the presence mark the charger offline.
CREATE SEQUENCE connection_generation_seq AS bigint;

ALTER TABLE chargers
    ADD COLUMN node_id text,                 -- node holding (or last holding) the socket
    ADD COLUMN connection_generation bigint; -- of that socket
CREATE INDEX chargers_connected_node ON chargers (node_id) WHERE connected;

-- A command for a charger whose socket is on another node. The row carries the
-- payload (NOTIFY carries only the id: its payload is limited to 8000 bytes).
CREATE TABLE cluster_commands (
    id               bigserial PRIMARY KEY,
    caller_node      text NOT NULL,
    target_node      text NOT NULL,
    charge_point_id  text NOT NULL,
    generation       bigint NOT NULL,   -- the connection it was addressed to
    payload          jsonb NOT NULL,    -- {"module", "class", "fields"} of an ocpp call
    deadline         timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sending', 'answered', 'call_error',
                                      'ocpp_error', 'not_connected', 'wrong_protocol',
                                      'closed', 'timeout', 'failed', 'expired')),
    response         jsonb,             -- the answer, like payload
    error            jsonb,             -- {"code", "description", "details"} or {"message"}
    created_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX cluster_commands_pending ON cluster_commands (target_node) WHERE state = 'pending';
CREATE INDEX cluster_commands_created ON cluster_commands (created_at);
