"""The shorter plan after a departure: still stored before sent, still decreases first."""

from __future__ import annotations

from smart_charging.reporting import ProfileSend
from smart_charging.service import SmartChargingService
from tests.csms.api.conftest import Api
from tests.smart_charging.support import (
    session_limits,
    start_site_fleet,
    start_three_sharing,
)
from tests.waiting import eventually


async def test_a_departure_raises_the_others_only_after_storing_their_new_limits(
    api: Api,
) -> None:
    # Three EVs share 32 A (10.6 A each); one leaves and the two others go up to 16 A.
    # That plan has increases only: its intent is stored with the first round and the
    # look for new sessions runs beside it. Every TxProfile, at the moment it is sent,
    # must already be stored as the session's pending (or accepted) limit, so that a
    # planner taking over after a crash assumes at least that much.
    fleet = await start_site_fleet(api, chargers=4)
    service = next(s for s in api.csms.app.services if isinstance(s, SmartChargingService))
    sender = service.planning.sender
    send = sender.send
    checked: list[tuple[float, float]] = []  # (limit sent, what was stored then)

    async def stored_first(s: ProfileSend) -> str:
        row = await api.csms.pool.fetchrow(
            "SELECT limit_a, pending_a FROM sc_session_limits "
            "WHERE charge_point_id = $1 AND evse_id = $2 AND transaction_id = $3",
            s.tracked.charge_point_id,
            s.tracked.evse_id,
            s.tracked.transaction_id,
        )
        stored = [] if row is None else [v for v in (row["limit_a"], row["pending_a"]) if v]
        checked.append((s.limit, max(stored, default=0.0)))
        return await send(s)

    sender.send = stored_first  # type: ignore[method-assign]
    try:
        await start_three_sharing(api, fleet)
        checked.clear()
        assert fleet.chargers[0].stop_session(1, "Local")

        async def two_at_their_maximum() -> bool:
            return await session_limits(api) == [16.0, 16.0]

        await eventually(two_at_their_maximum, within=15)
        raised = [(limit, stored) for limit, stored in checked if limit == 16.0]
        assert len(raised) >= 2, checked
        assert all(stored >= limit - 0.05 for limit, stored in checked), checked
    finally:
        await fleet.stop()
