"""An idle (full) EV holds no capacity a paused EV that wants energy could use (hypothesis).

The issue's property "a full EV never holds capacity another needs", stated as an
operator would check it on the load view: whenever a session that wants energy is
paused, giving back every ampere the idle sessions hold would still not let its
minimum fit next to what the other sessions that want energy have.
"""

from __future__ import annotations

from hypothesis import given

from smart_charging.allocation import allocate, node_paths
from tests.smart_charging.test_allocation import Scenario, _capacity, _loads, _usage
from tests.smart_charging.test_urgency_idle import flagged


@given(flagged())
def test_an_idle_ev_holds_nothing_a_paused_ev_could_use(scenario: Scenario) -> None:
    nodes, sessions = scenario
    currents = dict(allocate(nodes, sessions, 0.1).currents)
    wanting = [s for s in sessions if not s.idle]
    used = _usage(nodes, wanting, currents)  # the idle sessions' current given back
    capacity = _capacity(nodes)
    paths = node_paths(nodes)
    for s in wanting:
        if currents[s.id] > 0.0 or s.floor <= 0.0:
            continue
        assert any(capacity[r] - used[r] < w * s.floor - 1e-9 for r, w in _loads(s, paths)), s
