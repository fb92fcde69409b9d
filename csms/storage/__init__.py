"""Postgres storage: the pool, migrations and the SQL for each projection.

Everything that matters lives here, so that any CSMS process (and later any
node) sees the same chargers, sessions and events.
"""
