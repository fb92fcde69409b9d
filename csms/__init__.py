"""An OCPP 1.6J and 2.0.1 central system (CSMS) with Postgres persistence."""

__version__ = "0.1.0"
