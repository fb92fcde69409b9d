"""Where the capacity goes: the end-to-end benchmark's loss decomposition (``--explain``).

While some EV still wants energy, every ampere of the site limit that no EV
draws is *unused*: ``min(limit - summed draw, summed room of the EVs that want
energy)`` (room: an EV's maximum less its draw). :class:`LossLedger`
integrates it over the simulated day - at every change of any EV's draw (the
chargers' ``on_draw`` hook), every sample, and every change of the planner's
state (a re-plan starts or ends, the settle wait starts or ends) - and gives
each ampere-second to the first cause below that explains it:

``lag/ramp``
    offered to an EV that wants energy, not drawn yet: it follows a new limit
    (the EV model's reaction delay and ramp) - IEC 61851-1 behaviour;
``full, undetected``
    offered to an EV that is full and that the load manager does not know is
    full yet (the SuspendedEV report or the meter value still on its way, or
    judged after the settle grace);
``probe``
    offered to a full EV the load manager is probing (its minimum, to see
    whether it wants energy again);
``full, idle at minimum``
    offered to a full EV the load manager knows is idle (lowest class: it keeps
    its minimum when nobody else can use it, or its decrease is on its way);
``departed``
    planned for an EV that has left (its StopTransaction not planned yet);
then, for what is offered to nobody, by the planner's state:

``settle``
    decreases were accepted, the increases wait for the EVs to follow
    (``CSMS_SMART_CHARGING_SETTLE``);
``planner latency``
    a re-plan is running (database reads and writes, SetChargingProfile round
    trips) or requested and not started (debounce): real time, multiplied by
    the clock's speed;
``arrival unseen``
    an EV that arrived has no profile yet and the planner is idle: its start
    has not reached the load manager yet (event bus, API preferences);
``6 A minimum``
    what is left is less than the minimum (6 A per line) of every paused EV
    that wants energy: the LP optimum knows no minimum;
``plan (other)``
    the rest: rounding down to 0.1 A, caps at what an EV was seen drawing.

Left-Riemann sums between events: a draw is taken as constant from one step
of its EV to the next, and an EV steps again 5 s (its delay and ramp) after a
new limit, so ``lag/ramp`` counts the whole 5 s of a change (the EV really
draws part of it during its ramp: about 1.5 s of a full-range change too
much). ``of which arrivals`` says how much of ``settle`` and ``planner
latency`` fell while an arrival waited for its first profile.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from charge_point_sim import Fleet, SimClock
from charge_point_sim.model import Session

VOLTAGE = 230.0
CAUSES = (
    "lag/ramp",
    "full, undetected",
    "probe",
    "full, idle at minimum",
    "departed",
    "settle",
    "planner latency",
    "arrival unseen",
    "6 A minimum",
    "plan (other)",
)
MIN_A = 6.0
# The steps of a re-plan (smart_charging.planning.SitePlanning) timed in real time:
# (the planner, its profile sender, the service or its failsafe profiles; method).
PLAN_STEPS = (
    ("planning", "_read"),
    ("service", "ensure_fallbacks"),
    ("planning", "_plan"),
    ("sender", "commit_intent"),
    ("sender", "send_all"),
    ("fallbacks", "send_defaults"),
    ("planning", "_sessions_changed"),
    ("sender", "reattach"),
    ("sender", "commit_state"),
    ("planning", "_record"),
)


_IN_PLAN: contextvars.ContextVar[PlannerState | None] = contextvars.ContextVar(
    "in_plan", default=None
)


def _count_statements() -> None:
    """Count the SQL statements a re-plan sends (its tasks carry ``_IN_PLAN``): every
    query with arguments goes through ``_do_execute``, a BEGIN or COMMIT through
    ``execute`` without arguments."""
    connection: Any = asyncpg.connection.Connection  # private methods: no stubs
    if getattr(connection, "_counted_by_ledger", False):
        return
    do_execute, execute = connection._do_execute, connection.execute

    async def counted_do_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        planner = _IN_PLAN.get()
        if planner is not None:
            planner.statements += 1
        return await do_execute(self, *args, **kwargs)

    async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        planner = _IN_PLAN.get()
        if planner is not None and not args:
            planner.statements += 1
        return await execute(self, query, *args, **kwargs)

    connection._do_execute = counted_do_execute
    connection.execute = counted_execute
    connection._counted_by_ledger = True


@dataclass
class PlannerState:
    """What the load manager is doing, from wrappers around its re-plan and settle wait."""

    planning: int = 0
    settling: int = 0
    plans: int = 0  # re-plans run
    plan_real_s: float = 0.0  # real time spent in them (settle waits included)
    plan_sim_s: float = 0.0  # the same in simulated time
    settle_sim_s: float = 0.0  # simulated time spent waiting for decreases to settle
    planned: set[tuple[str, str]] = field(default_factory=set)  # sessions planned at least once
    steps_real_s: dict[str, float] = field(default_factory=dict)  # real s per step of a re-plan
    statements: int = 0  # SQL statements sent by re-plans (BEGIN and COMMIT included)


@dataclass
class LossLedger:
    """Integrates the unused capacity of one day by cause (module docstring).

    ``draw_w``: what a simulated EV draws now (its model played out since its last step).
    """

    fleet: Fleet
    sessions: Mapping[str, Session]  # EV id -> its simulated session
    charger_of: Mapping[str, str]  # EV id -> charger id
    clock: SimClock
    limit_a: float  # summed over the lines
    draw_w: Callable[[Session, SimClock], float] = lambda s, _clock: s.power_w
    service: Any = None  # the SmartChargingService (its tracked sessions and wake flags)
    planner: PlannerState = field(default_factory=PlannerState)
    wh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))
    arrivals_wh: float = 0.0  # of settle + planner latency: while an arrival waited
    # "full, idle at minimum" by the planner's state: a plan on its way, or held at rest
    # (beside a paused EV that wants energy, or with none paused).
    idle_wh: dict[str, float] = field(default_factory=dict)
    # "full, undetected" by what the load manager knows of that EV.
    undetected_wh: dict[str, float] = field(default_factory=dict)
    _last: datetime | None = None
    _rates: dict[str, float] = field(default_factory=dict)  # A by cause since _last
    _arrival: bool = False
    _idle_why: str = ""
    _undetected: dict[str, float] = field(default_factory=dict)  # A by reason, now

    def hook(self, service: Any) -> None:
        """Follow the planner's state: wrap its re-plan and its settle wait."""
        self.service = service
        _count_statements()
        planning = service.planning
        planning.replan = self._wrap(planning.replan, "planning")
        planning._settle = self._wrap(planning._settle, "settling")
        owners = {
            "planning": planning,
            "sender": planning.sender,
            "service": service,
            "fallbacks": service.fallbacks,
        }
        for owner_name, name in PLAN_STEPS:
            owner = owners[owner_name]
            if hasattr(owner, name):  # (an older checkout may lack a step)
                setattr(owner, name, self._timed(getattr(owner, name), name))

    def _timed(self, method: Callable[..., Any], name: str) -> Callable[..., Any]:
        """Real time spent in one step of a re-plan (the report's 'real ms per plan')."""

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            real = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                spent = self.planner.steps_real_s
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - real

        return timed

    def _wrap(self, method: Callable[..., Any], flag: str) -> Callable[..., Any]:
        @functools.wraps(method)
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.account()
            setattr(self.planner, flag, getattr(self.planner, flag) + 1)
            real, sim = time.perf_counter(), self.clock.now()
            token = _IN_PLAN.set(self.planner) if flag == "planning" else None
            try:
                return await method(*args, **kwargs)
            finally:
                if token is not None:
                    _IN_PLAN.reset(token)
                self.account()
                setattr(self.planner, flag, getattr(self.planner, flag) - 1)
                took = (self.clock.now() - sim).total_seconds()
                if flag == "planning":
                    self.planner.plans += 1
                    self.planner.plan_real_s += time.perf_counter() - real
                    self.planner.plan_sim_s += took
                    self.planner.planned |= set(self._tracked())
                else:
                    self.planner.settle_sim_s += took
                self.account()

        return wrapped

    def account(self) -> None:
        """Book the interval since the last call at the rates then, and take new rates."""
        now = self.clock.now()
        if self._last is not None:
            hours = (now - self._last).total_seconds() / 3600.0
            for cause, amps in self._rates.items():
                self.wh[cause] += amps * VOLTAGE * hours
                if self._arrival and cause in ("settle", "planner latency"):
                    self.arrivals_wh += amps * VOLTAGE * hours
                if cause == "full, undetected":
                    part = sum(self._undetected.values()) or 1.0
                    for why, a in self._undetected.items():
                        wh = amps * a / part * VOLTAGE * hours
                        self.undetected_wh[why] = self.undetected_wh.get(why, 0.0) + wh
                if cause == "full, idle at minimum":
                    why = self._idle_why
                    self.idle_wh[why] = self.idle_wh.get(why, 0.0) + amps * VOLTAGE * hours
        self._last = now
        self._rates, self._arrival = self._split(now)

    def _split(self, now: datetime) -> tuple[dict[str, float], bool]:
        present = {
            ev: s for ev, s in self.sessions.items() if s.stop_reason is None
        }  # simulated EVs still plugged in
        draws = {ev: self.draw_w(s, self.clock) for ev, s in present.items()}
        drawn = sum(draws.values()) / VOLTAGE
        room = sum(
            max(0.0, s.ev.spec.max_ac_kw * 1000.0 - draws[ev])
            for ev, s in present.items()
            if not s.ev.full
        ) / VOLTAGE  # fmt: skip
        unused = min(self.limit_a - drawn, room)
        if unused < 0.05:
            return {}, False
        tracked = self._tracked()
        lag = full_new = probe = idle = 0.0
        self._undetected = {}
        unplanned = False
        paused_min = []  # minimum (A summed over lines) of each paused EV wanting energy
        for ev_id, s in present.items():
            charger = self.fleet.charger(self.charger_of[ev_id])
            limit = charger.limit_w(charger.connectors[s.evse_id], now) / VOLTAGE
            maximum = s.ev.spec.max_ac_kw * 1000.0 / VOLTAGE
            mine = min(limit, maximum)
            if not s.ev.full:
                lag += max(0.0, mine - draws[ev_id] / VOLTAGE)
                if limit <= 0.0:
                    paused_min.append(MIN_A * s.ev.spec.phases)
                    key = (charger.cfg.charger_id, str(s.transaction_id))
                    unplanned = unplanned or key not in self.planner.planned
                continue
            t = tracked.get((charger.cfg.charger_id, str(s.transaction_id)))
            if t is not None and t.probing:
                probe += mine
            elif t is not None and t.idle:
                idle += mine
            else:
                full_new += mine
                why = self._undetected_why(t)
                self._undetected[why] = self._undetected.get(why, 0.0) + mine
        departed = 0.0
        here = {(self.charger_of[e], str(s.transaction_id)) for e, s in present.items()}
        for key, t in tracked.items():
            if key not in here:
                amps = t.assumed if t.assumed is not None else (t.limit or 0.0)
                departed += amps * t.phases
        rates: dict[str, float] = {}
        left = unused
        for cause, amps in (
            ("lag/ramp", lag),
            ("full, undetected", full_new),
            ("probe", probe),
            ("full, idle at minimum", idle),
            ("departed", departed),
        ):
            take = min(left, amps)
            if take > 0:
                rates[cause] = take
                left -= take
        if left > 1e-9:
            rates[self._why_not_offered(left, unplanned, paused_min)] = left
        busy = self.planner.planning > 0 or self.planner.settling > 0
        wake = self.service._wake.get("s") if self.service is not None else None
        if busy or (wake is not None and wake.is_set()):
            self._idle_why = "plan on its way"
        else:
            self._idle_why = "held, an EV paused" if paused_min else "held, none paused"
        return rates, unplanned and busy

    def _undetected_why(self, t: Any) -> str:
        if t is None:
            return "untracked"
        if t.assumed is not None:
            return "not steered"
        if t.reported == "SuspendedEV":
            return "reported, not judged yet"
        return "no report yet"

    def _why_not_offered(self, left: float, unplanned: bool, paused_min: list[float]) -> str:
        if self.planner.settling:
            return "settle"
        wake = self.service._wake.get("s") if self.service is not None else None
        if self.planner.planning or (wake is not None and wake.is_set()):
            return "planner latency"
        if unplanned:
            return "arrival unseen"
        if paused_min and left < min(paused_min):
            return "6 A minimum"
        return "plan (other)"

    def _tracked(self) -> dict[tuple[str, str], Any]:
        if self.service is None:
            return {}
        return {(t.charge_point_id, t.transaction_id): t for t in self.service.sessions.values()}

    def report(self) -> str:
        total = sum(self.wh.values())
        parts = ", ".join(f"{c} {v / 1000:.2f}" for c, v in self.wh.items() if v >= 0.5)
        p = self.planner
        return (f"unused while an EV wanted energy {total / 1000:.2f} kWh: {parts}; "
                f"of which arrivals {self.arrivals_wh / 1000:.2f}; idle at minimum: "
                + ", ".join(f"{k} {v / 1000:.2f}" for k, v in sorted(self.idle_wh.items()))
                + "; full, undetected: "
                + ", ".join(f"{k} {v / 1000:.2f}" for k, v in sorted(self.undetected_wh.items()))
                + f"; {p.plans} plans, "
                f"{p.plan_real_s / max(1, p.plans) * 1000:.0f} ms real "
                f"({p.plan_sim_s / max(1, p.plans):.1f} s simulated) each, "
                f"{p.statements / max(1, p.plans):.1f} SQL statements each, "
                f"settle {p.settle_sim_s:.0f} s simulated; real ms per plan in "
                + ", ".join(f"{k.strip('_')} {v / max(1, p.plans) * 1000:.0f}"
                            for k, v in p.steps_real_s.items()))  # fmt: skip


def merge(ledgers: list[dict[str, float]]) -> dict[str, float]:
    """Mean Wh per cause over days."""
    out = dict.fromkeys(CAUSES, 0.0)
    for wh in ledgers:
        for cause, value in wh.items():
            out[cause] += value / len(ledgers)
    return out
