"""Charger authentication: OCPP security profiles 1-3 at the WebSocket upgrade.

* :mod:`~csms.security.passwords` hashes and verifies Basic Auth passwords (argon2id);
* :mod:`~csms.security.policy` decides, as pure functions, what a charger must present;
* :mod:`~csms.security.ratelimit` slows down addresses that keep failing;
* :mod:`~csms.security.tls` builds the server's TLS context (profiles 2 and 3);
* :mod:`~csms.security.gate` ties them together for the WebSocket server.

Nothing is imported here, so that storage can use :mod:`passwords` without
pulling in the gate (which itself uses storage).
"""
