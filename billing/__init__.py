"""Billing: tariffs, session pricing from meter data, charge detail records."""
