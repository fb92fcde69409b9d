"""Versioned SQL migrations, applied in order by :mod:`csms.storage.migrate`.

Files are named ``NNNN_description.sql``; each runs once, in its own
transaction, and is recorded in ``schema_migrations`` with a checksum. Never
edit a migration that has been released: add a new one.
"""
