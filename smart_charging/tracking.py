"""What the load manager knows of each session, and what a meter value means (pure).

For every active session on a site it keeps the limit the charger last
*accepted* (what the charger enforces), the current last measured per line,
and, when the session cannot be steered (charger offline, a profile rejected
or unanswered, or it draws more than it was allowed), the current it is
assumed to draw: its *last known maximum*. :func:`judge_sample` decides
whether a meter value shows a clear deviation that is worth a re-plan.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.events import MeterSample
from smart_charging.planner_state import Told

_LINES = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}
DRAWING_THRESHOLD_A = 0.5  # a line carrying more than this is in use


@dataclass(slots=True)
class Tracked:
    """One active session as the real-time loop follows it (mutable, one per EVSE)."""

    charge_point_id: str
    evse_id: int
    transaction_id: str
    limit: float | None = None  # A per line the charger accepted last (None: not yet)
    assumed: float | None = None  # set while uncontrolled: A it may draw
    measured: tuple[float, float, float] | None = None
    phases: int = 3  # lines the EV loads, learnt from its meter values
    observed_max: float | None = None  # cap at what it draws when clearly below its offer
    rank: float = 0.0  # start time (epoch s): earlier sessions are admitted first
    priority: int | None = None  # set for this session through the API (None: charger's)
    changed_at: float = 0.0  # monotonic time its limit last changed (the EV needs a moment)
    changed_on: datetime | None = None  # the same instant as a date (to compare samples' times)
    departure_at: datetime | None = None  # time of use: set through the API with the energy
    energy_wanted_wh: float | None = None
    energy_wh: float | None = None  # delivered so far, from its meter
    # False while ``limit`` is only what a previous planner (another node, or this one
    # before a restart) may have left in force: its first profile is sent even unchanged.
    confirmed: bool = True
    # While unconfirmed: the lowest limit the charger may be enforcing (a decrease sent
    # by the previous planner may or may not have been applied). ``limit`` is the highest.
    floor_limit: float | None = None
    # Full and idle EVs (see :func:`note_draw`): ``idle`` = it gave its share back.
    idle: bool = False
    idle_since: float | None = None  # monotonic: since when it draws nothing while offered
    idle_at: float = 0.0  # monotonic: when it last became idle (or was last probed)
    probing: bool = False  # offered its minimum again, to see whether it still wants energy
    probe_until: float = 0.0
    suspended_ev: bool = False  # the charger says the EV suspends charging (SuspendedEV)
    reported: str | None = None  # the EV's state the charger reported last (Charging, ...)
    reported_at: float = 0.0  # monotonic: when it was reported
    said_on: datetime | None = None  # the charger's own time of that report
    reported_unsteered: bool = False  # ... while it was not steered (``assumed`` set)
    # Its row in sc_session_limits as this planner last stored it (None: not by this one):
    # a plan writes only the rows that changed.
    saved: Told | None = None

    def last_known_max(self, fallback: float) -> float:
        """The most this session may be drawing now (used while it cannot be steered)."""
        values = [fallback if self.limit is None else self.limit]
        if self.assumed is not None:
            values.append(self.assumed)
        if self.measured is not None:
            values.append(max(self.measured))
        return max(values)


def currents_per_line(samples: Iterable[MeterSample]) -> tuple[float, float, float] | None:
    """The latest Current.Import per line (A) among ``samples``, or None without any.

    A sample with no phase is a per-line value of a balanced load (1.6 allows it).
    """
    latest: dict[int, tuple[object, float]] = {}
    found = False
    for s in samples:
        if s.measurand != "Current.Import" or s.location not in (None, "Outlet"):
            continue
        found = True
        lines = [_LINES[s.phase]] if s.phase in _LINES else [0, 1, 2]
        for line in lines:
            previous = latest.get(line)
            if previous is None or str(previous[0]) <= str(s.sampled_at):
                latest[line] = (s.sampled_at, s.value)
    if not found:
        return None
    return (
        latest.get(0, (None, 0.0))[1],
        latest.get(1, (None, 0.0))[1],
        latest.get(2, (None, 0.0))[1],
    )


class Verdict(enum.StrEnum):
    """What a meter value says about a session (the re-plan reason)."""

    STEADY = "steady"
    IDLE = "ev_idle"
    DRAWING_AGAIN = "ev_drawing_again"
    OVERDRAW = "drawing_more_than_allowed"
    UNDERDRAW = "drawing_less_than_offered"
    WANTS_MORE = "drawing_its_full_offer"
    PHASES_CHANGED = "phases_changed"


def judge_sample(
    t: Tracked,
    measured: tuple[float, float, float],
    offered: float,
    threshold: float,
    margin: float,
    settling: bool = False,
) -> Verdict:
    """Update ``t`` with a measurement under limit ``offered``; say if a re-plan is due.

    * more than ``offered + threshold`` on a line: the charger is not keeping
      the limit; the session is uncontrolled at what it draws;
    * less than ``offered - threshold`` (and it is charging): cap it at what it
      draws plus ``margin``, so the rest goes to the others;
    * capped and drawing its whole offer: lift the cap, it may want more;
    * the number of lines in use changed (a single-phase EV found out).

    While ``settling`` (its limit changed a moment ago) the value may predate
    the change: it is stored but judged only for the lines in use.
    """
    t.measured = measured
    drawn = max(measured)
    in_use = sum(1 for a in measured if a > DRAWING_THRESHOLD_A)
    if settling:
        return Verdict.STEADY
    if drawn > offered + threshold:
        t.assumed = max(drawn, t.assumed or 0.0)
        return Verdict.OVERDRAW
    if in_use in (1, 3) and in_use != t.phases:
        t.phases = in_use
        return Verdict.PHASES_CHANGED
    if in_use and drawn < offered - threshold:
        cap = round(drawn + margin, 1)
        if t.observed_max is None or abs(t.observed_max - cap) > threshold / 2:
            t.observed_max = cap
            return Verdict.UNDERDRAW
        return Verdict.STEADY
    if t.observed_max is not None and drawn >= offered - DRAWING_THRESHOLD_A and offered > 0:
        t.observed_max = None
        return Verdict.WANTS_MORE
    return Verdict.STEADY


def predates_change(
    t: Tracked, samples: Iterable[MeterSample], grace: float, now: float, trust: float
) -> bool:
    """Whether a meter value was *taken* before the EV could follow its last limit change.

    A value delivered late (a charger's transaction queue, a reconnect) says nothing about
    a limit set after it was taken; judged by its arrival alone, it made a session that had
    just been lowered look overdrawing, and its old draw was set aside until it was
    reattached. ``grace``: the EV's time to follow (s). The charger's clock is trusted for
    this only until ``trust`` s after the change (``now``, ``t.changed_at``: monotonic), so
    a charger whose clock is behind is judged by arrival time again after that.
    """
    taken = [s.sampled_at for s in samples]
    if t.changed_on is None or not taken or now - t.changed_at > trust:
        return False
    return max(taken) < t.changed_on + timedelta(seconds=grace)


def note_draw(
    t: Tracked, measured: tuple[float, float, float], offered: float, now: float, idle_after: float
) -> Verdict:
    """Full and idle EVs: give the share back after ``idle_after`` s without a draw.

    Called for samples taken after the EV had time to follow its limit. A session
    offered at least its minimum that draws nothing on any line for ``idle_after``
    seconds (or that the charger reports as SuspendedEV, :func:`note_suspended`) is
    *idle*: it goes to the lowest class, capped at its minimum. It is back at once
    when a sample shows it drawing again, and a probe (:func:`start_probe`) offers
    it its minimum from time to time when it was paused, so it can show it.
    """
    drawing = max(measured) > DRAWING_THRESHOLD_A
    if drawing:
        t.idle_since = None
        if t.reported == "SuspendedEV":
            t.reported = None  # out of date: it draws
        if t.idle or t.probing:
            t.idle, t.probing = False, False
            return Verdict.DRAWING_AGAIN
        return Verdict.STEADY
    if offered <= 0.0:
        return Verdict.STEADY  # paused by the plan: a 0 A draw says nothing about the EV
    if t.idle_since is None:
        t.idle_since = now
    expired_probe = t.probing and now >= t.probe_until
    if not t.idle and (now - t.idle_since >= idle_after or expired_probe):
        t.idle, t.probing, t.idle_at = True, False, now
        return Verdict.IDLE
    return Verdict.STEADY


def note_state(
    t: Tracked, state: str, now: float, settling: bool, said_on: datetime | None = None
) -> Verdict:
    """The charger reported the EV's state (Charging, SuspendedEV, SuspendedEVSE, ...).

    Charging is proof that the EV draws: an idle or probed session is back in its
    class at once (not only at its next meter value, minutes later). SuspendedEV
    gives the share back (:func:`note_suspended`), but not while ``settling``: an EV
    starting after a new limit is suspended a moment; :func:`probe_found_nothing`
    reads that report once the EV has had time to follow.
    """
    t.reported, t.reported_at, t.reported_unsteered = state, now, False
    t.said_on = said_on
    if state == "Charging" and (t.idle or t.probing):
        t.idle, t.probing, t.suspended_ev, t.idle_since = False, False, False, None
        return Verdict.DRAWING_AGAIN
    if settling:
        return Verdict.STEADY
    return note_suspended(t, state == "SuspendedEV", now)


def note_unsteered_state(t: Tracked, state: str, now: float) -> None:
    """The charger reported the EV's state while the session was not steered (``assumed``).

    Nothing is judged then (the plan does not steer it: it has set its draw aside), but
    the report is kept: the charger will not say SuspendedEV again while the EV stays
    full, so :func:`still_suspended` reads it once the session has a limit again.
    """
    t.reported, t.reported_at, t.reported_unsteered = state, now, True
    t.said_on = None
    if state == "Charging":
        t.idle_since = None


def still_suspended(t: Tracked, now: float, grace: float) -> bool:
    """Whether the EV has had ``grace`` s to follow its last limit (above 0 A) and the
    charger's last report since that change is SuspendedEV: it does not want energy.

    A SuspendedEV report while settling is not judged at once (an EV starting after a
    new limit is suspended a moment, :func:`note_state`); this judges it afterwards, so
    an EV that is full right after a change does not hold its share until two meter
    values without a draw (``idle_after``) have come.
    """
    offered = (t.limit or 0.0) > 0.0 and now - t.changed_at >= grace
    # A report made while unsteered (note_unsteered_state) still stands: the EV that
    # had stopped would have said Charging (or shown a draw, note_draw) since.
    current = t.reported_at >= t.changed_at or t.reported_unsteered
    return offered and t.reported == "SuspendedEV" and current


def probe_found_nothing(t: Tracked, now: float, grace: float) -> bool:
    """Whether a probe is over: its window has passed, or the EV still says SuspendedEV
    after it has had ``grace`` s to follow the probe's limit."""
    return t.probing and (now >= t.probe_until or still_suspended(t, now, grace))


def note_suspended(t: Tracked, suspended: bool, now: float) -> Verdict:
    """The charger reported the EV's state: SuspendedEV gives the share back at once."""
    was = t.suspended_ev
    t.suspended_ev = suspended
    if suspended and not was and not t.idle:
        t.idle, t.probing, t.idle_at = True, False, now
        t.idle_since = t.idle_since if t.idle_since is not None else now
        return Verdict.IDLE
    return Verdict.STEADY


def start_probe(t: Tracked, now: float, interval: float, window: float) -> bool:
    """Offer an idle session its minimum again every ``interval`` s, for ``window`` s.

    Only one the plan paused (0 A): an idle session that got its minimum in the
    lowest class can already show that it draws again. Returns True if it starts.
    """
    if not t.idle or (t.limit or 0.0) > 0.0 or now - t.idle_at < interval:
        return False
    t.idle, t.probing, t.suspended_ev = False, True, False
    t.idle_since, t.idle_at, t.probe_until = None, now, now + window
    return True


def draws_nothing(t: Tracked, grace: float) -> bool:
    """Whether the EV is known to draw nothing now, so lowering its limit takes no current
    from it and the others may have that current at once (no settle time).

    Known: the charger's last report is SuspendedEV, made once the EV had had ``grace`` s
    to follow its last limit change - an EV that has just become full. A report made
    while it was still following says nothing (an EV about to start is suspended a
    moment), nor does a paused EV's (SuspendedEVSE: it may draw as soon as it is allowed).
    """
    if t.reported != "SuspendedEV" or t.reported_at < t.changed_at + grace:
        return False
    # Arrived after the grace, but said (the charger's own time) within it: an EV that
    # was still following a raise, its report delivered late (a busy feed, a backlog).
    # It may be drawing: lowering it must start the settle time like any decrease.
    # (A charger whose clock is behind loses this exception: safe, a few seconds.)
    said, changed = t.said_on, t.changed_on
    return said is None or changed is None or said >= changed + timedelta(seconds=grace)
