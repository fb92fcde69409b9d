"""The cluster: every csms on one database is a node of one system.

* :mod:`csms.cluster.nodes` -- this node's lease; reaping the chargers of dead nodes.
* :mod:`csms.cluster.remote_commands` -- commands for chargers held by another node.
* :mod:`csms.cluster.codec` -- ocpp messages as JSON, for forwarding.
* :mod:`csms.cluster.node` -- the above, wired together for :class:`csms.app.Csms`.
* :mod:`csms.cluster.api` -- ``GET /api/v1/cluster/nodes``.

Presence (which node holds each charger's socket, fenced by a connection
generation) is stored by :mod:`csms.storage.chargers`; see docs/cluster.md.
"""
