"""Fault-detection rules over charger events: what each finds, and its thresholds.

Every rule is a function of (its small state, one input, the thresholds) that
returns its new state and what it observed: a :class:`Finding` (the condition
holds now) or a :class:`Clear` (the rule looked and the condition does not
hold). Rules do no I/O and never read a clock: times come in with the input
(the charger's own timestamps for what the charger measured, the server's
receive time for what only the server can judge), so they are deterministic
and cheap to test. State is frozen; a rule returns a new one. The alert
lifecycle (:mod:`csms.monitoring.alerts`) turns observations into alerts.

This module holds the shared types, the thresholds and the rules over status,
device-model, session, boot, heartbeat and clock events; the meter-sample
rules are in :mod:`csms.monitoring.rules_meter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from csms.events import ChargerEventsNotified, ConnectorStatus, ConnectorStatusChanged
from csms.monitoring.alerts import Severity

# Rule names: the ``rule`` of an alert and a Prometheus label value (a fixed set).
CONNECTOR_FAULTED = "connector_faulted"
CONNECTOR_ERROR = "connector_error"
COMPONENT_PROBLEM = "component_problem"
VOLTAGE_OUT_OF_BAND = "voltage_out_of_band"
OVERCURRENT = "overcurrent"
OVER_LIMIT = "current_over_limit"
TEMPERATURE_HIGH = "temperature_high"
TEMPERATURE_RISING = "temperature_rising_fast"
STUCK_METER = "stuck_meter"
REGISTER_BACKWARDS = "register_backwards"
REGISTER_JUMP = "register_jump"
SHORT_SESSIONS = "short_sessions"
REBOOT_LOOP = "reboot_loop"
HEARTBEAT_GAP = "heartbeat_gap"
CLOCK_SKEW = "clock_skew"

RULES = (
    CONNECTOR_FAULTED,
    CONNECTOR_ERROR,
    COMPONENT_PROBLEM,
    VOLTAGE_OUT_OF_BAND,
    OVERCURRENT,
    OVER_LIMIT,
    TEMPERATURE_HIGH,
    TEMPERATURE_RISING,
    STUCK_METER,
    REGISTER_BACKWARDS,
    REGISTER_JUMP,
    SHORT_SESSIONS,
    REBOOT_LOOP,
    HEARTBEAT_GAP,
    CLOCK_SKEW,
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The condition of ``rule`` holds for this connector (``None``: the whole charger)."""

    rule: str
    severity: Severity
    evse_id: int | None
    connector_id: int | None
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Clear:
    """``rule`` looked at this connector and its condition does not hold."""

    rule: str
    evse_id: int | None
    connector_id: int | None


Observation = Finding | Clear


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every limit the rules use. Defaults suit a 22 kW, 3-phase, 230/400 V AC charger.

    Per charger model or per charger, some of them can be overridden
    (:meth:`with_overrides`; stored in the ``alert_thresholds`` table).
    Durations are seconds of the charger's clock unless they say otherwise.
    """

    # Voltage: EN 50160 allows the nominal +-10 %; a short dip is not a fault.
    nominal_voltage_v: float = 230.0  # line to neutral; line-to-line is sqrt(3) times it
    voltage_tolerance: float = 0.10
    voltage_hold_s: float = 60.0
    # Current: the connector's rating, and the smart-charging limit when one is known.
    max_current_a: float = 32.0
    current_margin: float = 0.10  # relative, above the rating or the limit
    current_margin_a: float = 1.0  # absolute, so that a 6 A limit is not tripped by 0.7 A
    current_hold_s: float = 60.0
    # Temperature (connector or body): outright, and fast rise while already warm.
    temperature_max_c: float = 70.0
    temperature_rise_c: float = 10.0  # this many degrees ...
    temperature_rise_window_s: float = 300.0  # ... within this long ...
    temperature_rise_floor_c: float = 45.0  # ... ending above this
    # Energy register.
    max_power_w: float = 22_000.0  # most the connector can deliver (register jump)
    register_jump_margin: float = 0.25
    register_slack_wh: float = 50.0  # rounding and sampling jitter
    register_backwards_wh: float = 1.0
    stuck_min_power_w: float = 500.0
    stuck_hold_s: float = 300.0
    stuck_min_expected_wh: float = 20.0
    # Sessions that end within seconds, again and again.
    short_session_s: float = 60.0
    short_session_count: int = 3
    short_session_window_s: float = 3600.0
    # Reboot loops (server clock: boots are counted as they arrive).
    reboot_count: int = 3
    reboot_window_s: float = 600.0
    # Heartbeat gap (server clock): silent for this many heartbeat intervals.
    heartbeat_gap_multiple: float = 3.0
    # Clock skew (charger timestamp minus server receive time); 0 disables.
    clock_skew_max_s: float = 300.0
    clock_skew_hold_s: float = 60.0  # server seconds; rides out a queued backlog

    def with_overrides(self, overrides: Mapping[str, Any]) -> Thresholds:
        """A copy with ``overrides`` applied; unknown names or non-numbers raise ValueError."""
        known = {f.name: f.type for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise ValueError(f"unknown threshold {name!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"threshold {name!r} must be a number, got {value!r}")
            values[name] = int(value) if known[name] == "int" else float(value)
        return dataclasses.replace(self, **values)


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


# -- connector status (1.6 StatusNotification errorCode, 2.0.1 status) ---------------


def connector_status(event: ConnectorStatusChanged) -> tuple[Observation, Observation]:
    """Faulted (critical) and error codes on a working connector (1.6 warnings, warning)."""
    where = (event.evse_id, event.connector_id)
    codes = {
        "error_code": event.error_code,
        "vendor_error_code": event.vendor_error_code,
        "info": event.info,
    }
    evidence = {"at": event.occurred_at.isoformat(), "status": event.status.value, **codes}
    faulted: Observation
    if event.status is ConnectorStatus.FAULTED:
        code = event.error_code or event.vendor_error_code or "no error code"
        faulted = Finding(
            CONNECTOR_FAULTED,
            Severity.CRITICAL,
            *where,
            f"connector {event.connector_id} is Faulted ({code})",
            evidence,
        )
    else:
        faulted = Clear(CONNECTOR_FAULTED, *where)
    error: Observation
    if event.status is not ConnectorStatus.FAULTED and event.error_code:
        error = Finding(
            CONNECTOR_ERROR,
            Severity.WARNING,
            *where,
            f"connector {event.connector_id} reports {event.error_code} while "
            f"{event.detail or event.status.value}",
            evidence,
        )
    else:
        error = Clear(CONNECTOR_ERROR, *where)
    return faulted, error


# -- 2.0.1 NotifyEvent: Problem variables and AvailabilityState ----------------------

_TRUE = {"true", "1", "yes"}


def component_events(event: ChargerEventsNotified) -> list[Observation]:
    """Observations from 2.0.1 NotifyEvent ``eventData`` (snake_case keys).

    A component's ``Problem`` variable set to true is a problem (cleared by
    ``cleared: true`` or the value false); ``AvailabilityState`` Faulted is a
    faulted connector. Other component events are not faults.
    """
    out: list[Observation] = []
    for item in event.event_data:
        component = item.get("component") or {}
        variable = (item.get("variable") or {}).get("name")
        evse = component.get("evse") or {}
        evse_id = evse.get("id")
        connector_id = evse.get("connector_id", 1 if evse_id is not None else None)
        value = str(item.get("actual_value", "")).strip()
        cleared = bool(item.get("cleared"))
        evidence = {
            "at": item.get("timestamp"),
            "component": component.get("name"),
            "variable": variable,
            "actual_value": value,
            "tech_code": item.get("tech_code"),
            "tech_info": item.get("tech_info"),
        }
        if variable == "Problem":
            if cleared or value.lower() not in _TRUE:
                out.append(Clear(COMPONENT_PROBLEM, evse_id, connector_id))
            else:
                detail = item.get("tech_info") or item.get("tech_code") or "no detail"
                out.append(
                    Finding(
                        COMPONENT_PROBLEM,
                        Severity.WARNING,
                        evse_id,
                        connector_id,
                        f"component {component.get('name')} reports a problem ({detail})",
                        evidence,
                    )
                )
        elif variable == "AvailabilityState" and evse_id is not None:
            if value == "Faulted" and not cleared:
                out.append(
                    Finding(
                        CONNECTOR_FAULTED,
                        Severity.CRITICAL,
                        evse_id,
                        connector_id,
                        f"EVSE {evse_id} is Faulted ({item.get('tech_code') or 'no code'})",
                        evidence,
                    )
                )
            else:
                out.append(Clear(CONNECTOR_FAULTED, evse_id, connector_id))
    return out


# -- short sessions, again and again -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShortSessionState:
    """Short sessions of one connector: when each ended (charger clock), newest last."""

    ends: tuple[datetime, ...] = ()


def session_ended(
    state: ShortSessionState,
    evse: tuple[int | None, int | None],
    started_at: datetime,
    ended_at: datetime,
    th: Thresholds,
) -> tuple[ShortSessionState, Observation]:
    """Count a session that ended within ``short_session_s``; find N of them in the window."""
    duration = seconds(ended_at, started_at)
    if duration >= th.short_session_s:
        # A normal session: the plug and contactor work again.
        return ShortSessionState(), Clear(SHORT_SESSIONS, *evse)
    window_start = ended_at - timedelta(seconds=th.short_session_window_s)
    ends = (*(t for t in state.ends if t > window_start), ended_at)
    state = ShortSessionState(ends[-th.short_session_count * 2 :])
    if len(ends) < th.short_session_count:
        return state, Clear(SHORT_SESSIONS, *evse)
    minutes = seconds(ends[-1], ends[0]) / 60
    return state, Finding(
        SHORT_SESSIONS,
        Severity.WARNING,
        *evse,
        f"{len(ends)} sessions on connector {evse[1]} ended within "
        f"{th.short_session_s:g} s of starting in {minutes:.0f} min (plug or contactor fault?)",
        {"at": ended_at.isoformat(), "duration_s": round(duration, 1), "short_sessions": len(ends)},
    )


def short_sessions_expired(
    state: ShortSessionState, evse: tuple[int | None, int | None], now: datetime, th: Thresholds
) -> tuple[ShortSessionState, Observation | None]:
    """Clear once the window holds fewer than N short sessions (``now``: charger clock)."""
    window_start = now - timedelta(seconds=th.short_session_window_s)
    ends = tuple(t for t in state.ends if t > window_start)
    if len(ends) < th.short_session_count:
        return ShortSessionState(ends), Clear(SHORT_SESSIONS, *evse)
    return state, None


# -- reboot loops ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebootState:
    """When the charger's recent BootNotifications arrived (server clock)."""

    boots: tuple[datetime, ...] = ()


def charger_booted(
    state: RebootState, received_at: datetime, reason: str | None, th: Thresholds
) -> tuple[RebootState, Observation]:
    window_start = received_at - timedelta(seconds=th.reboot_window_s)
    boots = (*(t for t in state.boots if t > window_start), received_at)
    state = RebootState(boots[-th.reboot_count * 2 :])
    if len(boots) < th.reboot_count:
        return state, Clear(REBOOT_LOOP, None, None)
    return state, Finding(
        REBOOT_LOOP,
        Severity.CRITICAL,
        None,
        None,
        f"charger booted {len(boots)} times in {th.reboot_window_s / 60:g} min",
        {"at": received_at.isoformat(), "boots_in_window": len(boots), "reason": reason},
    )


def reboots_expired(
    state: RebootState, now: datetime, th: Thresholds
) -> tuple[RebootState, Observation | None]:
    """Clear once fewer than ``reboot_count`` boots are left in the window (server clock)."""
    window_start = now - timedelta(seconds=th.reboot_window_s)
    boots = tuple(t for t in state.boots if t > window_start)
    if len(boots) < th.reboot_count:
        return RebootState(boots), Clear(REBOOT_LOOP, None, None)
    return state, None


# -- heartbeat gaps (server clock) ---------------------------------------------------


def heartbeat_gap(
    last_seen_at: datetime | None, now: datetime, heartbeat_interval_s: float, th: Thresholds
) -> Observation:
    """A connected charger that said nothing for ``heartbeat_gap_multiple`` intervals."""
    if last_seen_at is None:
        return Clear(HEARTBEAT_GAP, None, None)
    silent = seconds(now, last_seen_at)
    if silent <= heartbeat_interval_s * th.heartbeat_gap_multiple:
        return Clear(HEARTBEAT_GAP, None, None)
    return Finding(
        HEARTBEAT_GAP,
        Severity.WARNING,
        None,
        None,
        f"no message for {silent:.0f} s while connected (heartbeat every "
        f"{heartbeat_interval_s:g} s)",
        {"last_seen_at": last_seen_at.isoformat(), "silent_s": round(silent, 1)},
    )


# -- clock skew ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockSkewState:
    """Since when (server clock) every timestamp was skewed, and how many were."""

    since: datetime | None = None
    messages: int = 0


# A charger whose clock is in step (every message of a healthy one): built once.
_CLOCK_IN_STEP: tuple[ClockSkewState, Observation] = (
    ClockSkewState(),
    Clear(CLOCK_SKEW, None, None),
)


def clock_skew(
    state: ClockSkewState, charger_time: datetime, received_at: datetime, th: Thresholds
) -> tuple[ClockSkewState, Observation | None]:
    """A charger timestamp far from the server's time, for every message over a hold time.

    A message queued while offline carries an old timestamp too; requiring the
    skew on every message for ``clock_skew_hold_s`` (and at least three
    messages) lets such a backlog be delivered without an alert.
    """
    if th.clock_skew_max_s <= 0:
        return state, None
    skew = seconds(charger_time, received_at)
    if abs(skew) <= th.clock_skew_max_s:
        return _CLOCK_IN_STEP
    since = state.since or received_at
    state = ClockSkewState(since, state.messages + 1)
    if state.messages < 3 or seconds(received_at, since) < th.clock_skew_hold_s:
        return state, None
    direction = "ahead of" if skew > 0 else "behind"
    return state, Finding(
        CLOCK_SKEW,
        Severity.WARNING,
        None,
        None,
        f"charger clock is {abs(skew):.0f} s {direction} server time",
        {
            "charger_time": charger_time.isoformat(),
            "server_time": received_at.isoformat(),
            "skew_s": round(skew, 1),
        },
    )
