"""Interoperability with real charger firmware: what each charger supports, and fitting
what the CSMS sends to it (see docs/interop.md)."""
