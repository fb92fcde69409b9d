"""A departure committed on the planner's node is planned before the bus delivers it."""

from __future__ import annotations

import asyncio

import pytest

import smart_charging.observing as observing
from csms.events import Event, SessionEnded
from smart_charging.service import SmartChargingService
from tests.csms.api.conftest import Api
from tests.smart_charging.support import (
    session_limits,
    start_site_fleet,
    start_three_sharing,
)
from tests.waiting import eventually


async def test_a_departure_is_planned_at_its_commit_and_the_bus_asks_no_second_plan(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three EVs share 32 A (10.6 A each). The bus's delivery of every event to the load
    # manager is held back from the moment one EV leaves: the two others still get
    # 16 A, from the plan the departure's commit asked for. Once the bus delivers the
    # departure, the ended session is forgotten and no second plan is asked for it.
    fleet = await start_site_fleet(api, chargers=4)
    service = next(s for s in api.csms.app.services if isinstance(s, SmartChargingService))
    gate = asyncio.Event()
    gate.set()
    delivered: list[Event] = []
    on_event = observing.on_event

    async def held(svc: SmartChargingService, event: Event) -> None:
        await gate.wait()
        await on_event(svc, event)
        delivered.append(event)  # handled

    monkeypatch.setattr(observing, "on_event", held)
    reasons: list[str] = []  # every re-plan asked for, by whom ever
    request = service.request_replan

    def noted(site_id: str, reason: str) -> None:
        reasons.append(reason)
        request(site_id, reason)

    monkeypatch.setattr(service, "request_replan", noted)
    try:
        await start_three_sharing(api, fleet)
        acted = service.early.acted
        gate.clear()  # from now on the bus delivers nothing to the load manager
        assert fleet.chargers[0].stop_session(1, "Local")

        async def two_at_their_maximum() -> bool:
            return await session_limits(api) == [16.0, 16.0]

        await eventually(two_at_their_maximum, within=15)
        assert not any(isinstance(e, SessionEnded) for e in delivered)
        assert service.early.acted == acted + 1  # the departure alone
        planned = len(reasons)
        assert reasons.count("session_ended") == 1, reasons

        gate.set()

        async def departure_delivered() -> bool:
            return any(isinstance(e, SessionEnded) for e in delivered)

        await eventually(departure_delivered, within=15)
        assert "session_ended" not in reasons[planned:], reasons
        assert len(service.sessions) == 2  # the ended session is forgotten
    finally:
        gate.set()
        await fleet.stop()
