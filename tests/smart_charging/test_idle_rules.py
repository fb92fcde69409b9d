"""The idle rules and the worst case a new planner assumes (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smart_charging.planner_state import StoredLimit, worst_case
from smart_charging.tracking import (
    Tracked,
    Verdict,
    draws_nothing,
    note_draw,
    note_state,
    note_suspended,
    note_unsteered_state,
    probe_found_nothing,
    start_probe,
    still_suspended,
)

ZERO = (0.0, 0.0, 0.0)


def _tracked(limit: float = 10.0) -> Tracked:
    return Tracked("CP", 1, "tx", limit=limit)


def test_no_draw_for_a_while_makes_a_session_idle_and_a_draw_brings_it_back() -> None:
    t = _tracked()
    assert note_draw(t, ZERO, 10.0, now=0.0, idle_after=60.0) is Verdict.STEADY
    assert note_draw(t, ZERO, 10.0, now=59.0, idle_after=60.0) is Verdict.STEADY
    assert note_draw(t, ZERO, 10.0, now=60.0, idle_after=60.0) is Verdict.IDLE
    assert t.idle
    assert note_draw(t, (6.0, 6.0, 6.0), 6.0, now=61.0, idle_after=60.0) is Verdict.DRAWING_AGAIN
    assert not t.idle and t.idle_since is None


def test_a_session_paused_by_the_plan_is_not_idle_for_drawing_nothing() -> None:
    t = _tracked(limit=0.0)
    for now in (0.0, 100.0, 1000.0):
        assert note_draw(t, ZERO, 0.0, now=now, idle_after=60.0) is Verdict.STEADY
    assert not t.idle


def test_suspended_ev_is_idle_at_once() -> None:
    t = _tracked()
    assert note_suspended(t, True, now=5.0) is Verdict.IDLE
    assert t.idle
    assert note_suspended(t, True, now=6.0) is Verdict.STEADY  # said again: nothing new


def test_a_paused_idle_session_is_probed_then_idle_again_if_it_does_not_draw() -> None:
    t = _tracked()
    note_suspended(t, True, now=0.0)
    assert not start_probe(t, now=10.0, interval=900.0, window=60.0)  # it has 10 A: no need
    t.limit = 0.0  # the plan paused it
    assert not start_probe(t, now=899.0, interval=900.0, window=60.0)
    assert start_probe(t, now=900.0, interval=900.0, window=60.0)
    assert t.probing and not t.idle
    t.limit = 6.0  # offered its minimum
    assert note_draw(t, ZERO, 6.0, now=930.0, idle_after=600.0) is Verdict.STEADY
    assert note_draw(t, ZERO, 6.0, now=960.0, idle_after=600.0) is Verdict.IDLE  # window over
    assert t.idle and not t.probing


def test_a_charging_report_brings_an_idle_session_back_even_while_settling() -> None:
    t = _tracked()
    assert note_state(t, "SuspendedEV", now=5.0, settling=False) is Verdict.IDLE
    assert note_state(t, "Charging", now=6.0, settling=True) is Verdict.DRAWING_AGAIN
    assert not t.idle and not t.probing and not t.suspended_ev
    # SuspendedEV while settling is a moment before the EV follows: not judged.
    assert note_state(t, "SuspendedEV", now=7.0, settling=True) is Verdict.STEADY
    assert not t.idle


def test_a_probe_ends_on_suspended_ev_reported_after_the_ev_had_time_to_follow() -> None:
    t = _tracked(limit=0.0)
    t.idle, t.idle_at = True, 0.0
    assert start_probe(t, now=100.0, interval=60.0, window=600.0)
    t.limit, t.changed_at = 6.0, 101.0  # the charger accepted the probe's minimum
    note_state(t, "SuspendedEV", now=102.0, settling=True)
    assert not probe_found_nothing(t, now=103.0, grace=5.0)  # the EV may still start
    assert probe_found_nothing(t, now=106.0, grace=5.0)
    # A report from before the probe's limit says nothing about it; the window still ends it.
    t.reported_at = 100.5
    assert not probe_found_nothing(t, now=106.0, grace=5.0)
    assert probe_found_nothing(t, now=700.0, grace=5.0)


def test_worst_case_is_the_highest_of_what_was_accepted_sent_or_assumed() -> None:
    def row(limit: float | None, pending: float | None, assumed: float | None) -> StoredLimit:
        return StoredLimit("CP", 1, "tx", limit, pending, assumed, 3)

    assert worst_case(None, 32.0) == 32.0  # nothing known: the hardware maximum
    assert worst_case(row(None, None, None), 32.0) == 32.0
    assert worst_case(row(10.0, 6.0, None), 32.0) == 10.0  # a decrease maybe not applied
    assert worst_case(row(6.0, 10.0, None), 32.0) == 10.0  # an increase maybe applied
    assert worst_case(row(6.0, None, 16.0), 32.0) == 16.0


def test_only_an_ev_full_after_its_limit_settled_is_known_to_draw_nothing() -> None:
    """A decrease to such an EV frees nothing it draws: the others need not wait for it."""
    t = Tracked("cp", 1, "tx", limit=16.0, changed_at=100.0)
    assert not draws_nothing(t, 6.0)
    note_state(t, "SuspendedEV", 103.0, settling=True)  # still following: says nothing
    assert not draws_nothing(t, 6.0)
    note_state(t, "SuspendedEV", 400.0, settling=False)  # full long after the change
    assert draws_nothing(t, 6.0)
    note_state(t, "Charging", 401.0, settling=False)
    assert not draws_nothing(t, 6.0)
    note_state(t, "SuspendedEVSE", 402.0, settling=False)  # paused: may draw when allowed
    assert not draws_nothing(t, 6.0)


def test_suspended_ev_said_while_not_steered_is_judged_once_it_is_steered_again() -> None:
    """A charger says SuspendedEV once, when the EV becomes full. Said while the session
    was not steered (offline, profile refused), it is kept: once the session has a limit
    again and the EV had the settle time to follow, it is idle."""
    t = _tracked()
    t.assumed = 16.0  # not steered
    note_unsteered_state(t, "SuspendedEV", now=100.0)
    assert not t.idle
    t.limit, t.assumed, t.changed_at = 10.0, None, 200.0  # steered again
    assert not still_suspended(t, now=204.0, grace=6.0)  # still following its new limit
    assert still_suspended(t, now=206.0, grace=6.0)
    # An EV that draws (or says Charging) since is not suspended.
    note_draw(t, (10.0, 10.0, 10.0), 10.0, now=206.0, idle_after=60.0)
    assert not still_suspended(t, now=207.0, grace=6.0)
    note_unsteered_state(t, "SuspendedEV", now=208.0)
    note_state(t, "Charging", now=209.0, settling=False)
    assert not still_suspended(t, now=300.0, grace=6.0)


def test_a_suspended_ev_said_while_following_but_delivered_late_may_still_draw() -> None:
    """Its report arrived after the grace (a busy feed), but the charger said it 2 s after
    the raise, while the EV was still following: lowering it must wait the settle time.
    (At a 600x clock, EDF e2e breached by 11 A when it was taken as full.)"""
    changed_on = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    t = Tracked("cp", 1, "tx", limit=16.0, changed_at=100.0, changed_on=changed_on)
    note_state(t, "SuspendedEV", 110.0, settling=False, said_on=changed_on + timedelta(seconds=2))
    assert not draws_nothing(t, 6.0)
    note_state(t, "SuspendedEV", 400.0, settling=False, said_on=changed_on + timedelta(seconds=300))
    assert draws_nothing(t, 6.0)  # said long after the change: full
