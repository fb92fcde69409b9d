"""bench.boot_round_trips: the statements a known charger's set-up waits for.

A count, not a timing: a regression here means a set-up write went back to a
transaction of several round trips (docs/capacity.md has the table).
"""

from __future__ import annotations

from bench.boot_round_trips import count, on_path


async def test_a_known_chargers_set_up_waits_for_few_statements(database_dsn: str) -> None:
    tally = await count(database_dsn, chargers=1, idle_seconds=1.0)
    for version in ("1.6", "2.0.1"):
        # the handshake's credential lookup, then one statement (it commits by itself)
        assert on_path(tally, version, "connect", 1) == 2, version
        assert on_path(tally, version, "boot", 1) == 1, version
        assert on_path(tally, version, "close", 1) == 1, version
        assert on_path(tally, version, "heartbeat", 1) == 0, version
