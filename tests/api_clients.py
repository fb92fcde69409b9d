"""HTTP clients of the operator API for tests."""

from __future__ import annotations

import httpx

# What an API call waits in tests before httpx gives up (its default: 5 s). The test
# process is the CSMS too: on a loaded machine one full garbage collection of its heap
# stalled it for 8.2 s (CI of 2026-12-06, tests/smart_charging/test_arrivals.py), and the
# tests assert behaviour, not speed (speed is bench/'s).
API_TIMEOUT = 30.0


def api_client(base_url: str, key: str | None = None) -> httpx.AsyncClient:
    """A client of the API at ``base_url``, with ``key`` as its bearer token if given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=API_TIMEOUT)
