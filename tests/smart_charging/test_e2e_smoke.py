"""A short day of the end-to-end smart-charging benchmark (bench/smart_charging_e2e.py).

The real CSMS at a 600x simulated clock, four simulated chargers and lagging EVs
arriving by the benchmark's workload, two simulated hours: the harness runs, the
EVs' summed current never exceeds the site limit at any sample, energy flows,
and the energy the CSMS stored matches what the simulated EVs took.
(No figure of merit is asserted: quality is the benchmark's job.)
"""

from __future__ import annotations

import pytest

from bench.smart_charging_e2e import E2EOptions, run_day
from bench.smart_charging_loss import CAUSES
from bench.smart_charging_workload import workload


@pytest.mark.parametrize(
    ("explain", "policy"),
    [(False, "fair"), (True, "fair"), (False, "edf")],
    ids=["plain", "explained", "edf"],
)
async def test_a_short_day_end_to_end_keeps_the_limit_and_counts_the_energy(
    database_dsn: str, explain: bool, policy: str
) -> None:
    """Also with the loss decomposition on (it wraps the planner's methods), and with a
    classic greedy allocation policy on the site (the baselines run through the service)."""
    evs = [ev for ev in workload(3, 8) if ev.arrival < 18][:4]  # arriving before 08:30
    assert len(evs) == 4
    limit_w = 0.25 * sum(ev.max_w for ev in evs)
    options = E2EOptions(speed=600.0, day_steps=24, explain=explain, policy=policy)
    day = await run_day(database_dsn, evs, limit_w, options)
    assert day.samples > 0  # checked at every step of every EV and every 10 simulated s
    assert day.breaches == 0 and day.peak_ratio <= 1.0 + 1e-6
    delivered = sum(day.delivered_wh.values())
    assert delivered > 0
    assert all(day.delivered_wh[ev.id] <= ev.energy_wh + 1.0 for ev in evs)
    # What the CSMS stored from the chargers' meter values is what the EVs took.
    assert day.stored_wh == pytest.approx(delivered, rel=0.02, abs=50.0)
    if explain:  # every cause accounted, none negative
        assert day.unused_wh is not None and set(day.unused_wh) == set(CAUSES)
        assert all(wh >= 0.0 for wh in day.unused_wh.values())
