"""An EV still plugged in after its announced departure (smart_charging/urgency.py):
shared like a session without a deadline, never ahead of one that can still be full."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from smart_charging.allocation import Session, allocate
from smart_charging.urgency import PAST_DEPARTURE, STEPS, laxity_s, urgency_class
from tests.smart_charging.test_allocation import TOL, Scenario, scenarios

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Deadline:
    departure: datetime
    wanted_wh: float
    charging: bool


@st.composite
def with_deadlines(draw: st.DrawFn) -> tuple[Scenario, dict[str, Deadline]]:
    """A random tree whose sessions say when they leave (some already past) and what they
    want; classed by the service's rule (with hysteresis for those that have current)."""
    nodes, sessions = draw(scenarios())
    deadlines: dict[str, Deadline] = {}
    out = []
    for s in sessions:
        left_s = draw(st.one_of(st.floats(-4 * 3600.0, 0.0), st.floats(60.0, 10 * 3600.0)))
        d = Deadline(NOW + timedelta(seconds=left_s), draw(st.floats(1000.0, 60_000.0)),
                     draw(st.booleans()))  # fmt: skip
        deadlines[s.id] = d
        g = urgency_class(NOW, d.departure, d.wanted_wh, 0.0, s.max_current, len(s.phases),
                          charging=d.charging)  # fmt: skip
        out.append(dataclasses.replace(s, urgency=g))
    return (nodes, out), deadlines


def _past(d: Deadline) -> bool:
    return d.departure <= NOW


def _can_be_full(s: Session, d: Deadline) -> bool:
    lax = laxity_s(NOW, d.departure, d.wanted_wh, 0.0, s.max_current, len(s.phases))
    return not _past(d) and lax is not None and 0.0 <= lax < 12 * 3600.0


@given(with_deadlines(), st.booleans())
def test_an_ev_past_its_departure_never_takes_from_one_that_can_still_be_full(
    case: tuple[Scenario, dict[str, Deadline]], fill_gaps: bool
) -> None:
    """Every session that can still be full by its departure gets exactly what it gets
    without the EVs past their departure of its operator priority or a lower one."""
    (nodes, sessions), deadlines = case
    base = allocate(nodes, sessions, 0.0, fill_gaps=fill_gaps).currents
    for s in sessions:
        if not _can_be_full(s, deadlines[s.id]):
            continue
        kept = [o for o in sessions if not (_past(deadlines[o.id]) and o.priority <= s.priority)]
        alone = allocate(nodes, kept, 0.0, fill_gaps=fill_gaps).currents
        assert abs(base[s.id] - alone[s.id]) <= TOL, s


def test_past_departure_is_classed_as_without_a_deadline() -> None:
    gone = NOW - timedelta(minutes=1)
    for charging in (False, True):
        assert urgency_class(NOW, gone, 30_000.0, 0.0, 16.0, 3, charging=charging) == 0
    assert PAST_DEPARTURE == 0
    # Five minutes before its departure, unable to be full: still the most urgent tier
    # (the hysteresis of one that charges does not move it past its departure).
    soon = NOW + timedelta(minutes=5)
    for charging in (False, True):
        assert urgency_class(NOW, soon, 30_000.0, 0.0, 16.0, 3, charging=charging) > STEPS


def test_an_ev_past_its_departure_still_charges_on_what_is_left() -> None:
    """It is not starved: alone, or beside EVs that leave it room, it gets its share."""
    from smart_charging.allocation import Node

    nodes = [Node("site", None, (40.0, 40.0, 40.0))]
    gone, soon = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    late = Session(id="late", node="site", max_current=16.0, rank=0.0,
                   urgency=urgency_class(NOW, gone, 20_000.0, 0.0, 16.0, 3))  # fmt: skip
    urgent = Session(id="urgent", node="site", max_current=16.0, rank=1.0,
                     urgency=urgency_class(NOW, soon, 20_000.0, 0.0, 16.0, 3))  # fmt: skip
    got = allocate(nodes, [late, urgent], 0.1, fill_gaps=True).currents
    assert got["urgent"] == 16.0 and got["late"] == 16.0
    tight = [Node("site", None, (20.0, 20.0, 20.0))]
    got = allocate(tight, [late, urgent], 0.1, fill_gaps=True).currents
    assert got["urgent"] == 16.0 and got["late"] == 0.0  # 4 A left: under its 6 A minimum
