"""The demo's live summary: a few lines redrawn in place, read from the operator API.

:func:`observe` reads what an operator would look at (fleet counts, the
depot's load, CDRs, alerts) into :class:`DemoState`; :func:`render` turns a
state into the lines shown (pure, so the output is testable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from csms.demo.scenario import CHARGER_MAX_A, SITE_ID

VOLTS = 230.0


@dataclass
class DemoState:
    """What the demo has seen so far; counts only grow, gauges are the latest reading."""

    sim_seconds: float = 0.0
    chargers: int = 0
    online: int = 0
    active_sessions: int = 0
    sessions_started: int = 0
    sessions_completed: int = 0
    energy_kwh: float = 0.0
    site_limit_a: float | None = None
    site_measured_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    site_allocated_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    throttled_now: int = 0
    throttled: set[str] = field(default_factory=set)  # sessions ever limited below 32 A
    cdrs: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> CDR
    open_alerts: int = 0
    alerts_seen: dict[int, str] = field(default_factory=dict)  # id -> rule
    kafka_events: int | None = None  # relay's published events; None = Kafka off

    @property
    def revenue(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for cdr in self.cdrs.values():
            currency = str(cdr.get("currency") or "EUR")
            out[currency] = out.get(currency, Decimal(0)) + Decimal(str(cdr["total_cost"]))
        return out

    @property
    def priced_cdrs(self) -> int:
        return sum(1 for cdr in self.cdrs.values() if Decimal(str(cdr["total_cost"])) > 0)


def kw(amps: float, lines: int = 3) -> float:
    return amps * VOLTS * lines / 1000.0


def render(state: DemoState) -> list[str]:
    """The summary lines (no colours, fixed order), e.g. for a terminal or a log."""
    hours, rest = divmod(int(state.sim_seconds), 3600)
    drawn = kw(sum(state.site_measured_a) / 3)
    limit = "no limit" if state.site_limit_a is None else f"{kw(state.site_limit_a):.1f} kW"
    revenue = ", ".join(f"{v:.2f} {c}" for c, v in sorted(state.revenue.items())) or "0.00"
    rules = sorted(set(state.alerts_seen.values()))
    kafka = "off" if state.kafka_events is None else f"{state.kafka_events} events published"
    return [
        f"simulated time  {hours:d}h{rest // 60:02d}m",
        f"chargers        {state.online}/{state.chargers} online",
        f"sessions        {state.active_sessions} active, {state.sessions_started} started, "
        f"{state.sessions_completed} completed",
        f"depot load      {drawn:.1f} kW drawn of {limit} "
        f"(L1-L3 {'/'.join(f'{a:.0f}' for a in state.site_measured_a)} A); "
        f"{state.throttled_now} sessions throttled now, {len(state.throttled)} so far",
        f"energy          {state.energy_kwh:.1f} kWh",
        f"revenue         {revenue} incl. VAT from {len(state.cdrs)} CDRs "
        f"({state.priced_cdrs} priced)",
        f"alerts          {state.open_alerts} open, {len(state.alerts_seen)} raised"
        + (f" ({', '.join(rules)})" if rules else ""),
        f"kafka           {kafka}",
    ]


async def observe(api: httpx.AsyncClient, state: DemoState, gauges: bool = True) -> None:
    """Refresh ``state`` from the operator API (a failed read keeps the last values).

    ``gauges`` False reads only what accumulates (CDRs, alerts): after the fleet has
    stopped, the summary keeps the last live readings of chargers and load.
    """
    overview = await _get(api, "/dashboard/overview", {"limit": 1}) if gauges else None
    if overview:
        counts = overview["counts"]
        state.chargers, state.online = counts["chargers"], counts["connected"]
        state.active_sessions = counts["active_sessions"]
    load = await _get(api, f"/sites/{SITE_ID}/load", None) if gauges else None
    if load:
        state.site_limit_a = load.get("limit_a")
        state.site_measured_a = tuple(load.get("measured_a") or (0.0, 0.0, 0.0))
        state.site_allocated_a = tuple(load.get("allocated_a") or (0.0, 0.0, 0.0))
        throttled = [
            s
            for s in load.get("sessions", [])
            if s.get("limit_a") is not None and s["limit_a"] < CHARGER_MAX_A
        ]
        state.throttled_now = len(throttled)
        state.throttled.update(f"{s['charge_point_id']}/{s['transaction_id']}" for s in throttled)
    cdrs = await _get(api, "/cdrs", {"limit": 100})
    for cdr in (cdrs or {}).get("items", []):
        state.cdrs[int(cdr["id"])] = cdr
    alerts = await _get(api, "/alerts", {"limit": 200})
    if alerts is not None:
        items = alerts.get("items", [])
        state.open_alerts = sum(1 for a in items if a.get("status") != "resolved")
        for alert in items:
            state.alerts_seen[int(alert["id"])] = str(alert.get("rule"))


async def _get(
    api: httpx.AsyncClient, path: str, params: dict[str, Any] | None
) -> dict[str, Any] | None:
    try:
        response = await api.get(path, params=params)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body
