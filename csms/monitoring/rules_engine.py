"""Runs every rule over a stream of events: per charger and connector rule state.

:class:`FaultDetector` keeps the rules' small states (rolling windows) per
charger and connector, routes each event to the rules that read it and
returns what they observed. It does no I/O and reads no clock: the caller
passes the server receive time, and the thresholds of each charger (which may
differ per model, see :class:`csms.monitoring.rules.Thresholds`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from csms.events import (
    ChargerBooted,
    ChargerEventsNotified,
    ConnectorStatusChanged,
    Event,
    MeterSample,
    MeterSampled,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.monitoring import rules, rules_meter
from csms.monitoring.rules import Observation, Thresholds

Evse = tuple[int | None, int | None]
ENDED_KEPT = 8  # ended transactions remembered per charger (one per EVSE is plenty)
_SAMPLED_AT = attrgetter("sampled_at")  # max() over a message's samples, without a generator
LimitOf = Callable[[str, int | None], float | None]
"""The smart-charging current limit (A per phase) of (charger, EVSE) now, None: unknown."""


def no_limit(charge_point_id: str, evse_id: int | None) -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class ChargerProfile:
    """What decides a charger's thresholds: its model, site and configured rating."""

    model: str | None = None
    site_id: str | None = None  # smart charging's site of the charger
    max_current_a: float | None = None  # per connector, as configured for smart charging
    phases: int | None = None


Overrides = Mapping[tuple[str, str], Mapping[str, Any]]
"""(scope, key) -> {threshold name: value}; scopes ``site``, ``model``, ``charger``."""


def thresholds_for(
    charge_point_id: str, profile: ChargerProfile, defaults: Thresholds, overrides: Overrides
) -> tuple[Thresholds, list[str]]:
    """The thresholds of one charger, and the overrides that were refused.

    Most general first, most specific last: the defaults, the site's
    overrides, the model's, the rating configured for the charger in smart
    charging (its current, and the power that current allows), the charger's own.
    """
    th, refused = defaults, []
    layers: list[tuple[str, Mapping[str, Any] | None]] = [
        ("site", overrides.get(("site", profile.site_id or ""))),
        ("model", overrides.get(("model", profile.model or ""))),
    ]
    if profile.max_current_a:
        rating = {
            "max_current_a": profile.max_current_a,
            "max_power_w": profile.max_current_a
            * defaults.nominal_voltage_v
            * (profile.phases or 3),
        }
        layers.append(("rating", rating))
    layers.append(("charger", overrides.get(("charger", charge_point_id))))
    for scope, values in layers:
        if not values:
            continue
        try:
            th = th.with_overrides(values)
        except ValueError as error:
            refused.append(f"{scope}: {error}")
    return th, refused


class ChargingLimits:
    """The smart-charging current limit in force per EVSE, from ``charging_limit_set`` events.

    Smart charging records each profile it sends (and the charger's answer)
    as a ``charging_limit_set`` event; an accepted one is in force. As on the
    charger (OCPP's profile stack), a session's own TxProfile wins over the
    TxDefaultProfile, and the charger's max profile caps both; EVSE 0 stands for
    every EVSE, and a TxProfile ends with its transaction (one recorded after its
    transaction ended is ignored). A 0 A TxDefaultProfile
    is not a limit to check a draw against: it only says that a new session
    waits for its TxProfile (the load manager lowers idle chargers' defaults
    to what the sessions leave), and a session drawing while its TxProfile's
    event is not seen yet is no fault. :meth:`limit_of` is a :data:`LimitOf`.
    """

    def __init__(self) -> None:
        # charger -> (EVSE, kind: "tx" | "default" | "max") -> (A, transaction id); a
        # charger without limits is not a key (limit_of, per meter value, asks it first)
        self._limits: dict[str, dict[tuple[int, str], tuple[float, str | None]]] = {}
        # Per charger, its last few ended transactions: a TxProfile sent while its
        # session was stopping is recorded after the stop, and must not linger on
        # the EVSE into the next session.
        self._ended: dict[str, deque[str]] = {}
        # charger -> its EVSEs with a TxProfile in force: an end looks only at those
        # (it scanned every stored limit of the fleet, on each session end)
        self._tx_evses: dict[str, set[int]] = {}

    def clear(self) -> None:
        self._limits.clear()
        self._ended.clear()
        self._tx_evses.clear()

    def limit_set(self, charge_point_id: str, payload: dict[str, Any]) -> None:
        if payload.get("status") != "Accepted" or payload.get("limit_a") is None:
            return
        evse_id = int(payload.get("evse_id") or 0)
        purpose = str(payload.get("purpose") or "")
        kind = "max" if purpose.endswith("MaxProfile") else "default"
        if purpose == "TxProfile" or (not purpose and evse_id != 0):
            kind = "tx"
        transaction_id = payload.get("transaction_id")
        if kind == "tx" and transaction_id is not None:
            transaction_id = str(transaction_id)
            if transaction_id in self._ended.get(charge_point_id, ()):
                return  # its session has ended already
        limit = (float(payload["limit_a"]), transaction_id)
        self._limits.setdefault(charge_point_id, {})[(evse_id, kind)] = limit
        if kind == "tx":
            self._tx_evses.setdefault(charge_point_id, set()).add(evse_id)

    def transaction_ended(self, charge_point_id: str, transaction_id: str | None) -> None:
        if transaction_id is not None:
            ended = self._ended.setdefault(charge_point_id, deque(maxlen=ENDED_KEPT))
            ended.append(transaction_id)
        evses = self._tx_evses.get(charge_point_id)
        if not evses:
            return
        limits = self._limits[charge_point_id]
        for evse_id in list(evses):
            key = (evse_id, "tx")
            if limits[key][1] == transaction_id:
                del limits[key]
                evses.discard(evse_id)
        if not evses:
            del self._tx_evses[charge_point_id]
        if not limits:
            del self._limits[charge_point_id]

    def limit_of(self, charge_point_id: str, evse_id: int | None) -> float | None:
        limits = self._limits.get(charge_point_id)
        if limits is None:  # asked for every meter value; none without smart charging
            return None

        def get(evse: int, kind: str) -> float | None:
            found = limits.get((evse, kind))
            return None if found is None else found[0]

        evse = evse_id or 0
        told = get(evse, "tx")
        if told is None:
            told = get(evse, "default")
            if told is None:
                told = get(0, "default")
            if told is not None and told <= 0.0:
                told = None  # "wait for your TxProfile", not a limit to check against
        caps = [v for v in (told, get(evse, "max"), get(0, "max")) if v is not None]
        return min(caps) if caps else None


@dataclass
class ChargerRuleState:
    """Rule state of one charger (replaced, never mutated in place, by the rules)."""

    meters: dict[Evse, rules_meter.MeterState] = field(default_factory=dict)
    short_sessions: dict[Evse, rules.ShortSessionState] = field(default_factory=dict)
    open_transactions: dict[str, tuple[Evse, datetime]] = field(default_factory=dict)
    reboots: rules.RebootState = field(default_factory=rules.RebootState)
    clock: rules.ClockSkewState = field(default_factory=rules.ClockSkewState)
    # Latest charger timestamp and when it arrived: the charger's "now" on a tick.
    charger_time: tuple[datetime, datetime] | None = None


class FaultDetector:
    """Every rule over every charger; feed it events with :meth:`observe`."""

    def __init__(self, limit_of: LimitOf = no_limit) -> None:
        self.chargers: dict[str, ChargerRuleState] = {}
        self.limit_of = limit_of

    def observe(self, event: Event, received_at: datetime, th: Thresholds) -> list[Observation]:
        """What the rules make of one committed event the server received at ``received_at``."""
        state = self.chargers.get(event.charge_point_id)
        if state is None:
            state = self.chargers[event.charge_point_id] = ChargerRuleState()
        if isinstance(event, MeterSampled):
            evse = (event.evse_id, event.connector_id or event.evse_id)
            out = self._samples(state, event.charge_point_id, evse, event.samples, th)
            if event.samples:
                newest = max(map(_SAMPLED_AT, event.samples))
                out.extend(self._clock(state, newest, received_at, th))
            return out
        if isinstance(event, ConnectorStatusChanged):
            return list(rules.connector_status(event))
        if isinstance(event, SessionStarted | SessionUpdated | SessionEnded):
            return self._session(state, event, received_at, th)
        if isinstance(event, ChargerEventsNotified):
            return [
                *rules.component_events(event),
                *self._clock(state, event.occurred_at, received_at, th),
            ]
        if isinstance(event, ChargerBooted):
            state.reboots, found = rules.charger_booted(
                state.reboots, received_at, event.reason, th
            )
            return [found]
        return []

    def tick(
        self,
        now: datetime,
        thresholds_of: Callable[[str], Thresholds],
        only: Iterable[str] | None = None,
    ) -> list[tuple[str, Observation]]:
        """Window rules whose condition ends with time alone (reboot loops, short sessions).

        ``only``: these chargers (a slice of a large fleet), else every one.
        """
        out: list[tuple[str, Observation]] = []
        for charge_point_id in list(self.chargers) if only is None else only:
            state = self.chargers.get(charge_point_id)
            if state is None:  # forgotten since the slice was taken
                continue
            th = thresholds_of(charge_point_id)
            state.reboots, cleared = rules.reboots_expired(state.reboots, now, th)
            if cleared is not None:
                out.append((charge_point_id, cleared))
            if state.charger_time is not None:
                charger_now = state.charger_time[0] + (now - state.charger_time[1])
                for evse, sessions in list(state.short_sessions.items()):
                    state.short_sessions[evse], found = rules.short_sessions_expired(
                        sessions, evse, charger_now, th
                    )
                    if found is not None:
                        out.append((charge_point_id, found))
        return out

    def forget(self, charge_point_id: str) -> None:
        self.chargers.pop(charge_point_id, None)

    # -- helpers -----------------------------------------------------------------

    def _samples(
        self,
        state: ChargerRuleState,
        charge_point_id: str,
        evse: Evse,
        samples: tuple[MeterSample, ...],
        th: Thresholds,
    ) -> list[Observation]:
        if not samples or evse[0] in (None, 0):
            return []  # charger-wide meters (EVSE 0) are not a connector's
        meter = state.meters.get(evse) or rules_meter.MeterState()
        limit_a = self.limit_of(charge_point_id, evse[0])
        out: list[Observation] = []
        for reading in rules_meter.readings(samples):
            meter, found = rules_meter.evaluate(meter, evse, reading, th, limit_a)
            out.extend(found)
        state.meters[evse] = meter
        return out

    def _clock(
        self, state: ChargerRuleState, charger_time: datetime, received_at: datetime, th: Thresholds
    ) -> list[Observation]:
        state.charger_time = (charger_time, received_at)
        state.clock, found = rules.clock_skew(state.clock, charger_time, received_at, th)
        return [] if found is None else [found]

    def _session(
        self,
        state: ChargerRuleState,
        event: SessionStarted | SessionUpdated | SessionEnded,
        received_at: datetime,
        th: Thresholds,
    ) -> list[Observation]:
        transaction_id = event.transaction_id
        known = state.open_transactions.get(transaction_id or "")
        evse: Evse = (event.evse_id, event.connector_id or event.evse_id)
        if evse[0] is None and known is not None:
            evse = known[0]  # 1.6 StopTransaction names no connector
        if isinstance(event, SessionStarted) and transaction_id is not None:
            state.open_transactions[transaction_id] = (evse, event.occurred_at)
        elif isinstance(event, SessionUpdated) and known is None and transaction_id is not None:
            state.open_transactions[transaction_id] = (evse, event.occurred_at)
        out = self._samples(state, event.charge_point_id, evse, event.samples, th)
        if not event.offline and event.samples:
            newest = max(map(_SAMPLED_AT, event.samples))
            out.extend(self._clock(state, newest, received_at, th))
        if isinstance(event, SessionEnded):
            started = state.open_transactions.pop(transaction_id or "", None)
            if evse[0] is not None:
                meter = state.meters.get(evse)
                if meter is not None:
                    state.meters[evse], cleared = rules_meter.idle(meter, evse)
                    out.extend(cleared)
                if started is not None:
                    shorts = state.short_sessions.get(evse, rules.ShortSessionState())
                    state.short_sessions[evse], found = rules.session_ended(
                        shorts, evse, started[1], event.occurred_at, th
                    )
                    out.append(found)
            state.charger_time = (event.occurred_at, received_at)
        return out
