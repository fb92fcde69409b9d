"""What the load manager learns from committed events: sessions, draws, EV states, presence.

Each event may make a site's plan stale; these functions update the tracked
sessions (:mod:`smart_charging.tracking`) and ask the site's planner for a
re-plan when it does: a session started or ended, a meter value off its limit
(see :func:`measure`), an EV reported SuspendedEV or Charging, a charger that
went offline, booted or reconnected.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from csms.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatusChanged,
    Event,
    MeterSampled,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from smart_charging import planner_state
from smart_charging.model import session_key
from smart_charging.tracking import (
    Verdict,
    currents_per_line,
    judge_sample,
    note_draw,
    note_state,
    note_unsteered_state,
    predates_change,
)

if TYPE_CHECKING:
    from smart_charging.service import SmartChargingService

OBSERVED_MARGIN_A = 1.0  # headroom kept above what an EV that draws little really draws
SAMPLE_GRACE_S = 1.0  # after a limit change + settle: a sample may still show the old draw
SAMPLE_TRUST_S = 900.0  # how long after a change a sample's own time can make it predate it


async def on_event(svc: SmartChargingService, event: Event) -> None:
    cp = event.charge_point_id
    planned = svc.early.delivered(event)  # a start or end planned at its commit (early.py)
    if isinstance(event, SessionStarted | SessionUpdated | SessionEnded | MeterSampled):
        site_id = await svc.site_of(cp)
        if site_id is None:
            return
        if isinstance(event, SessionStarted):
            if not planned:
                svc.replan_here(site_id, "session_started")
        elif isinstance(event, SessionEnded):
            svc.drop_transaction(cp, event.transaction_id)
            if not planned:
                svc.replan_here(site_id, "session_ended")
        else:
            verdict = svc._measure(event)
            if isinstance(event, SessionUpdated) and event.charging_state is not None:
                # 2.0.1 says what the EV does: SuspendedEV gives the share back,
                # Charging brings an idle or probed session back at once.
                state = suspended(
                    svc, cp, event.evse_id, event.charging_state, event.transaction_id,
                    event.occurred_at,
                )  # fmt: skip
                verdict = state if state is not Verdict.STEADY else verdict
            if verdict is not None and verdict is not Verdict.STEADY:
                svc.replan_here(site_id, verdict.value)
    elif isinstance(event, ConnectorStatusChanged) and event.detail is not None:
        # 1.6 StatusNotification: SuspendedEV / Charging of the connector's session.
        verdict = suspended(svc, cp, event.evse_id, event.detail, None, event.occurred_at)
        if verdict is not Verdict.STEADY:
            site_id = await svc.site_of(cp)
            if site_id is not None:
                svc.replan_here(site_id, verdict.value)
    elif isinstance(event, ChargerDisconnected):
        # Its profiles stay: offline, it goes on applying its TxDefault (which the plan
        # keeps room for); they are sent again when it is back.
        site_id = await svc.site_of(cp)
        if site_id is not None:
            svc.replan_here(site_id, "charger_offline")
    elif isinstance(event, ChargerBooted | ChargerConnected):
        await forget_fallbacks(svc, cp, retry_now=True)  # a reboot may lose every profile
        site_id = await svc.site_of(cp)
        if site_id is not None:
            svc.replan_here(site_id, event.type)


async def forget_fallbacks(
    svc: SmartChargingService, charge_point_id: str, retry_now: bool = False
) -> None:
    svc.fallbacks.forget(charge_point_id, retry_now)
    site_id = await svc.site_of(charge_point_id)
    if site_id is not None and svc.leadership.holds(site_id):  # once, by its planner
        async with svc.pool.acquire() as conn:
            await planner_state.forget_fallbacks(conn, charge_point_id)


def suspended(
    svc: SmartChargingService,
    charge_point_id: str,
    evse_id: int | None,
    state: str,
    transaction_id: str | None,
    said_on: datetime | None = None,
) -> Verdict:
    """The EV's state as the charger reports it (SuspendedEV, Charging, ...) at ``said_on``
    (its own time: see :func:`smart_charging.tracking.draws_nothing`)."""
    if transaction_id is not None:  # 2.0.1 names the EVSE in a transaction's first event only
        t = svc.by_transaction.get((charge_point_id, transaction_id))
    else:
        t = svc.sessions.get(session_key(charge_point_id, evse_id or 0))
    if t is None:
        return Verdict.STEADY
    now = svc.clock.monotonic()
    if t.assumed is not None:
        # Not steered (offline, profile refused, overdraw): nothing to judge now. But a
        # charger reports a state only when it changes - a full EV says SuspendedEV
        # once - so it is kept and judged once the session is steered again
        # (tracking.still_suspended).
        note_unsteered_state(t, state, now)
        return Verdict.STEADY
    if not t.limit:
        # Paused, or its first profile not accepted yet: the EV is offered nothing (or is
        # about to follow its first limit, suspended a moment): its state says nothing.
        return Verdict.STEADY
    settling = now - t.changed_at < svc.settle_grace
    if settling and state == "SuspendedEV":  # judged once the EV has had time to follow
        wait = t.changed_at + svc.settle_grace - now
        svc.spawn(recheck_later(svc, charge_point_id, wait))
    return note_state(t, state, now, settling, said_on)


async def recheck_later(svc: SmartChargingService, charge_point_id: str, seconds: float) -> None:
    await svc.clock.sleep(seconds)
    site_id = await svc.site_of(charge_point_id)
    if site_id is not None:
        svc.replan_here(site_id, "ev_suspended")


def measure(svc: SmartChargingService, event: SessionUpdated | MeterSampled) -> Verdict | None:
    measured = currents_per_line(event.samples)
    if measured is None or event.transaction_id is None:
        return None
    tracked = svc.by_transaction.get((event.charge_point_id, event.transaction_id))
    if tracked is None:
        return None
    offered = tracked.limit if tracked.limit is not None else tracked.assumed
    if offered is None or tracked.assumed is not None:
        tracked.measured = measured  # not steered now: the plan sets aside its maximum
        return None
    # A sample taken before the EV followed its new limit says nothing about it.
    grace = svc.settle_grace
    now = svc.clock.monotonic()
    settling = now - tracked.changed_at < grace or predates_change(
        tracked, event.samples, grace, now, SAMPLE_TRUST_S
    )
    verdict = judge_sample(
        tracked,
        measured,
        offered,
        svc.settings.smart_charging_deviation_a,
        OBSERVED_MARGIN_A,
        settling=settling,
    )
    if settling or verdict is Verdict.OVERDRAW:
        return verdict
    idle = note_draw(tracked, measured, offered, now, svc.settings.smart_charging_idle_after)
    return idle if idle is not Verdict.STEADY else verdict
