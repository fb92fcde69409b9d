"""The strict open-loop client against the in-memory toy: every call due is accounted for."""

from __future__ import annotations

import time

from bench import toy_csms
from bench.load_client import Fleet, Window
from bench.ocpp_load import SAMPLES_PER_METER_VALUE


async def test_a_phase_accounts_for_every_call_due() -> None:
    server = await toy_csms.start()
    try:
        fleet = Fleet(f"ws://127.0.0.1:{toy_csms.bound_port(server)}", [0, 1, 2, 3], timeout=30)
        assert await fleet.open(compression=None, seed=1) == 0
        start = time.monotonic() + 0.1
        window = Window(start, start + 0.2, start + 2.2)
        result = await fleet.run_phase(20.0, window, "even", seed=2)
        await fleet.close()
    finally:
        server.close()
        await server.wait_closed()

    assert (result.errors, result.timeouts, result.disconnects) == (0, 0, 0), result.error_examples
    measured = sum(len(values) for values in result.latencies.values())
    # Every call due in the measured window was answered (and measured) or never sent.
    assert result.scheduled > 0 and measured + result.backlog == result.scheduled
    assert all(v >= 0 for values in result.latencies.values() for v in values)
    # Both versions' meter values were answered, each carrying its samples.
    assert "meter" in result.latencies
    assert result.samples_answered > 0
    assert result.samples_answered % SAMPLES_PER_METER_VALUE == 0
    assert result.rejected_starts == 0
    # Setup answers (boot, status, start) are not part of the phase; the sync Heartbeats are.
    assert result.answers >= measured + len(fleet.chargers)
