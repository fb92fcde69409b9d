"""Where a plan's real time goes, from the event that triggers it to its last answer.

A departure (SessionEnded), a full EV (SuspendedEV, ev_idle) or an arrival frees or
needs capacity *at once*: what it frees waits, at the e2e benchmark's 600x clock,
0.6 simulated seconds per real millisecond until the plan it triggers has its
profiles answered. :class:`LatencyProbe` wraps (in the benchmark's process only)
the event bus, the load manager's event handler and the steps of a re-plan, and
splits that time, for every plan triggered by such an event, into:

* ``feed``: from the commit of the event (``EventBus.publish``) to the load
  manager's handler (the bus reads it back from the table, in feed order);
* ``queue``: from the handler's re-plan request to the start of the plan that
  serves it (a plan already running is finished first, then a new one starts);
* ``read``: the plan's reads (tree, sessions, stored limits, presence);
* ``alloc``: failsafe checks and the allocation itself (CPU);
* ``intent``: the pending limits stored before the first profile is sent;
* ``down``: the first round of profiles (decreases) until every answer is in;
* ``settle``: the wait for the EVs to follow the decreases (simulated 5 s, so
  about 8 real ms at 600x) with the increases' intent stored meanwhile;
* ``check``: the look for sessions started meanwhile;
* ``up``: the increases until every answer is in;
* ``tail`` (not in ``total``): from the last answer to the plan's end (its state and
  events stored) - time in which a new trigger waits in ``queue``.

``total`` = feed + queue + (plan start to its last profile answered). Also each
SetChargingProfile round trip (call to answer) and how many were in flight at once.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AT_ONCE = ("session_started", "session_ended", "ev_idle", "ev_suspended")
_TRIGGERS = ("session_ended", "connector_status_changed", "session_updated", "session_started")
PARTS = (
    *("feed", "queue", "read", "alloc", "intent", "down", "settle", "check", "up", "total"),
    "tail",
)


@dataclass
class _Plan:
    started: float
    marks: dict[str, float] = field(default_factory=dict)
    last_answer: float | None = None
    sends: int = 0


@dataclass
class LatencyProbe:
    """Real-time split of the plans triggered by events that free or need capacity."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})
    round_trips: list[float] = field(default_factory=list)  # s per SetChargingProfile
    in_flight_max: int = 0
    plans: int = 0
    unchanged_skipped: int = 0
    _published: dict[Any, float] = field(default_factory=dict)  # event id -> real time
    _event_feed: float | None = None  # feed delay of the event being handled
    _pending: dict[str, tuple[float, float | None, str]] = field(default_factory=dict)
    by_trigger: dict[str, list[float]] = field(default_factory=dict)  # reason -> totals (s)
    _current: _Plan | None = None
    _in_flight: int = 0

    def hook(self, app: Any, service: Any) -> None:
        import smart_charging.observing as observing

        bus = app.bus
        publish = bus.publish

        def published(event: Any = None, **kwargs: Any) -> None:
            if event is not None and event.type in _TRIGGERS:
                self._published[event.event_id] = time.perf_counter()
            publish(event, **kwargs)

        bus.publish = published
        on_event = observing.on_event

        async def handled(svc: Any, event: Any) -> None:
            at = self._published.pop(event.event_id, None)
            self._event_feed = None if at is None else time.perf_counter() - at
            try:
                await on_event(svc, event)
            finally:
                self._event_feed = None

        observing.on_event = handled
        request = service.request_replan

        def requested(site_id: str, reason: str) -> None:
            if reason in AT_ONCE and site_id not in self._pending:
                self._pending[site_id] = (time.perf_counter(), self._event_feed, reason)
            request(site_id, reason)

        service.request_replan = requested
        planning = service.planning
        planning.replan = self._plan_wrap(planning.replan)
        sender = planning.sender
        marks = {
            (planning, "_read"): "read",
            (planning, "_plan"): "alloc",
            (sender, "commit_intent"): "intent",
            (planning, "_settle"): "settle",
            (planning, "_sessions_changed"): "check",
        }
        for (owner, name), part in marks.items():
            setattr(owner, name, self._mark(getattr(owner, name), part))
        sender.send_all = self._sends(sender.send_all)
        sender.call = self._call(sender.call)

    def _plan_wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def wrapped(site_id: str, reason: str) -> Any:
            pending = self._pending.pop(site_id, None)
            plan = _Plan(time.perf_counter())
            self._current = plan
            try:
                return await method(site_id, reason)
            finally:
                self._current = None
                if pending is not None and plan.last_answer is not None:
                    self._book(pending, plan)

        return wrapped

    def _book(self, pending: tuple[float, float | None, str], plan: _Plan) -> None:
        requested_at, feed, reason = pending
        self.plans += 1
        s = self.samples
        s["feed"].append(feed or 0.0)
        s["queue"].append(plan.started - requested_at)
        for part in ("read", "alloc", "intent", "down", "settle", "check", "up"):
            s[part].append(plan.marks.get(part, 0.0))
        assert plan.last_answer is not None
        s["total"].append((feed or 0.0) + plan.last_answer - requested_at)
        self.by_trigger.setdefault(reason, []).append(s["total"][-1])
        s["tail"].append(time.perf_counter() - plan.last_answer)

    def _mark(self, method: Callable[..., Any], part: str) -> Callable[..., Any]:
        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            plan, real = self._current, time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                if plan is not None:
                    plan.marks[part] = plan.marks.get(part, 0.0) + time.perf_counter() - real

        return timed

    def _sends(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def timed(sends: Any) -> Any:
            plan, real = self._current, time.perf_counter()
            try:
                return await method(sends)
            finally:
                if plan is not None and sends:
                    part = "down" if "down" not in plan.marks else "up"
                    plan.marks[part] = plan.marks.get(part, 0.0) + time.perf_counter() - real
                    plan.last_answer = time.perf_counter()
                    plan.sends += len(sends)

        return timed

    def _call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            real = time.perf_counter()
            self._in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self._in_flight)
            try:
                return await method(*args, **kwargs)
            finally:
                self._in_flight -= 1
                self.round_trips.append(time.perf_counter() - real)

        return timed

    def report(self) -> str:
        """One line: p50 / p90 / max real ms of each part, over the triggered plans."""

        def q(values: list[float]) -> str:
            if not values:
                return "-"
            ms = sorted(v * 1000 for v in values)
            p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
            return f"{statistics.median(ms):.0f}/{p90:.0f}/{ms[-1]:.0f}"

        parts = " ".join(f"{p} {q(self.samples[p])}" for p in PARTS)
        triggers = " ".join(f"{r} {q(v)} ({len(v)})" for r, v in sorted(self.by_trigger.items()))
        return (
            f"latency ({self.plans} triggered plans, real ms p50/p90/max): {parts}; "
            f"profile round trip {q(self.round_trips)} ({len(self.round_trips)} calls, "
            f"up to {self.in_flight_max} at once); total by first trigger: {triggers}"
        )
