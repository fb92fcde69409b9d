"""Charger certificates: the CSMS's certificate authority and OCSP look-ups (issue 16)."""
