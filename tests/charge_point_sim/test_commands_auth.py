"""CSMS-initiated commands, round trip (continued): reservations, SendLocalList /
GetLocalListVersion, ClearCache, ClearChargingProfile, and what the charger does
with refused (Invalid / Blocked) tokens. See ``test_commands.py`` for the rest.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from charge_point_sim.clock import iso
from charge_point_sim.ev import random_ev
from tests.charge_point_sim.support import (
    eventually,
    running,
    set_key,
    start_tx,
    statuses_of,
    stop_tx,
    token,
    until,
    wait_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
VERSIONS = pytest.mark.parametrize("v201", [False, True], ids=["v16", "v201"])


@pytest.fixture
async def csms(quiet_csms: Any) -> Any:
    """The CSMS with a one-day heartbeat interval and the token TAG1 (see conftest)."""
    return quiet_csms


# ---------------------------------------------------------------- reservations
def reserve_now(v201: bool, reservation_id: int, evse: int, tag: str, expiry: str) -> Any:
    if v201:
        return call201.ReserveNow(
            id=reservation_id, expiry_date_time=expiry, id_token=token(tag), evse_id=evse
        )
    return call16.ReserveNow(
        connector_id=evse, expiry_date=expiry, id_tag=tag, reservation_id=reservation_id
    )


def cancel_reservation(v201: bool, reservation_id: int) -> Any:
    module: Any = call201 if v201 else call16
    return module.CancelReservation(reservation_id=reservation_id)


@VERSIONS
async def test_reserve_now_and_cancel_reservation(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (fleet, ch, cp_id):
        expiry = iso(ch.clock.now() + timedelta(hours=2))
        res = await csms.router.call(cp_id, reserve_now(v201, 1, 1, "TAG1", expiry))
        assert res.status == "Accepted"
        await wait_status(csms, cp_id, 1, "Reserved")
        res = await csms.router.call(cp_id, reserve_now(v201, 2, 1, "TAG1", expiry))
        assert res.status == "Occupied"
        other: Any = (
            call201.RequestStartTransaction(id_token=token("TAG2"), remote_start_id=1, evse_id=1)
            if v201
            else call16.RemoteStartTransaction(id_tag="TAG2", connector_id=1)
        )
        assert (await csms.router.call(cp_id, other)).status == "Rejected"
        res = await csms.router.call(cp_id, cancel_reservation(v201, 1))
        assert res.status == "Accepted"
        await wait_status(csms, cp_id, 1, "Available")
        res = await csms.router.call(cp_id, cancel_reservation(v201, 1))
        assert res.status == "Rejected"
        # A reservation is used up by a session of its own token.
        res = await csms.router.call(cp_id, reserve_now(v201, 3, 2, "TAG1", expiry))
        assert res.status == "Accepted"
        await wait_status(csms, cp_id, 2, "Reserved")
        tx = await start_tx(csms, cp_id, v201, evse=2)
        assert ch.connectors[2].reservation is None
        row = await stop_tx(csms, cp_id, v201, tx)
        assert row["reservation_id"] == 3
        await wait_status(csms, cp_id, 2, "Available")
    assert fleet.summary().call_errors == {}


@VERSIONS
async def test_reservation_expires(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (fleet, ch, cp_id):
        expiry = iso(ch.clock.now() + timedelta(minutes=1))  # 0.5 s real
        res = await csms.router.call(cp_id, reserve_now(v201, 5, 1, "TAG1", expiry))
        assert res.status == "Accepted"
        await until(lambda: ch.connectors[1].reservation is None)

        async def reserved_then_available() -> bool:
            seen = await statuses_of(csms, cp_id, 1)
            return "Reserved" in seen and seen[-1] == "Available"

        await eventually(reserved_then_available)
        if v201:  # 2.0.1 also tells the CSMS why the reservation ended
            await until(lambda: fleet.stats.sent.get("ReservationStatusUpdate") == 1)


# ----------------------------------------------- local list, authorization cache
@VERSIONS
async def test_send_local_list_and_get_local_list_version(csms: Any, v201: bool) -> None:
    def send(version: int, full: bool, entries: list[tuple[str, str | None]]) -> Any:
        update = "Full" if full else "Differential"
        if v201:
            items = [
                {"idToken": token(tag), **({"idTokenInfo": {"status": st}} if st else {})}
                for tag, st in entries
            ]
            return call201.SendLocalList(
                version_number=version, update_type=update, local_authorization_list=items
            )
        return call16.SendLocalList(
            list_version=version,
            update_type=update,
            local_authorization_list=[
                {"idTag": tag, **({"idTagInfo": {"status": st}} if st else {})}
                for tag, st in entries
            ],
        )

    async def version() -> int:
        module: Any = call201 if v201 else call16
        res = await csms.router.call(cp_id, module.GetLocalListVersion())
        return int(res.version_number if v201 else res.list_version)

    async with running(csms, v201) as (fleet, ch, cp_id):
        assert await version() == 0
        full = [("TAG1", "Accepted"), ("TAG2", "Blocked")]
        assert (await csms.router.call(cp_id, send(3, True, full))).status == "Accepted"
        assert await version() == 3
        assert ch.local_list == {"TAG1": "Accepted", "TAG2": "Blocked"}
        res = await csms.router.call(cp_id, send(2, False, [("TAG3", "Accepted")]))
        assert res.status == "VersionMismatch"
        assert await version() == 3
        assert (await csms.router.call(cp_id, send(4, False, [("TAG2", None)]))).status == (
            "Accepted"
        )
        assert await version() == 4
        assert ch.local_list == {"TAG1": "Accepted"}
        # The list is used: with LocalPreAuthorize a Blocked entry needs no Authorize.
        res = await csms.router.call(cp_id, send(5, False, [("TAG9", "Blocked")]))
        assert res.status == "Accepted"
        await set_key(csms, cp_id, v201, "LocalPreAuthorize", "AuthCtrlr.LocalPreAuthorize", "true")
        assert await ch.start_session(1, "TAG9", random_ev(random.Random(1))) is None
        assert fleet.stats.auth_rejected == {"Blocked": 1}
        assert "Authorize" not in fleet.stats.sent


@VERSIONS
async def test_clear_cache(csms: Any, v201: bool) -> None:
    module: Any = call201 if v201 else call16
    async with running(csms, v201) as (fleet, ch, cp_id):
        assert await ch.start_session(1, "UNKNOWN", random_ev(random.Random(1))) is None
        assert ch.auth_cache == {"UNKNOWN": "Invalid"}
        assert (await csms.router.call(cp_id, module.ClearCache())).status == "Accepted"
        assert ch.auth_cache == {}
        await set_key(
            csms, cp_id, v201, "AuthorizationCacheEnabled", "AuthCacheCtrlr.Enabled", "false"
        )
        assert (await csms.router.call(cp_id, module.ClearCache())).status == "Rejected"
    assert fleet.summary().call_errors == {}


# --------------------------------------------------------- ClearChargingProfile
@VERSIONS
async def test_clear_charging_profile(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (_fleet, ch, cp_id):
        start = iso(ch.clock.now() - timedelta(minutes=1))

        async def install(profile_id: int, level: int, amps: float) -> None:
            period = [{"startPeriod": 0, "limit": amps}]
            common = {
                "stackLevel": level,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
            }
            if v201:
                payload: Any = call201.SetChargingProfile(
                    evse_id=0,
                    charging_profile={
                        "id": profile_id,
                        **common,
                        "chargingSchedule": [
                            {
                                "id": profile_id,
                                "startSchedule": start,
                                "chargingRateUnit": "A",
                                "chargingSchedulePeriod": period,
                            }
                        ],
                    },
                )
            else:
                payload = call16.SetChargingProfile(
                    connector_id=0,
                    cs_charging_profiles={
                        "chargingProfileId": profile_id,
                        **common,
                        "chargingSchedule": {
                            "startSchedule": start,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": period,
                        },
                    },
                )
            assert (await csms.router.call(cp_id, payload)).status == "Accepted"

        async def first_limit_w() -> float:
            if v201:
                res = await csms.router.call(
                    cp_id,
                    call201.GetCompositeSchedule(duration=300, evse_id=1, charging_rate_unit="W"),
                )
                periods = res.schedule["charging_schedule_period"]
            else:
                res = await csms.router.call(
                    cp_id,
                    call16.GetCompositeSchedule(
                        connector_id=1, duration=300, charging_rate_unit="W"
                    ),
                )
                periods = res.charging_schedule["charging_schedule_period"]
            assert res.status == "Accepted"
            return float(periods[0]["limit"])

        async def clear(**criteria: Any) -> str:
            if v201:
                profile_id = criteria.pop("id", None)
                crit = {
                    {"purpose": "chargingProfilePurpose", "level": "stackLevel"}[k]: v
                    for k, v in criteria.items()
                }
                payload: Any = call201.ClearChargingProfile(
                    charging_profile_id=profile_id, charging_profile_criteria=crit or None
                )
            else:
                payload = call16.ClearChargingProfile(
                    id=criteria.get("id"),
                    charging_profile_purpose=criteria.get("purpose"),
                    stack_level=criteria.get("level"),
                )
            return str((await csms.router.call(cp_id, payload)).status)

        await install(21, 0, 10.0)
        await install(22, 1, 8.0)
        assert await first_limit_w() == 8 * 230 * 3  # the higher stack level wins
        assert await clear(id=22) == "Accepted"
        assert [p.id for p in ch.profiles.profiles] == [21]
        assert await first_limit_w() == 10 * 230 * 3
        assert await clear(purpose="TxDefaultProfile", level=0) == "Accepted"
        assert ch.profiles.profiles == []
        assert await first_limit_w() == ch.cfg.max_power_w  # back to the hardware limit
        assert await clear(id=21) == "Unknown"


# ------------------------------------------------- refused tokens (Invalid/Blocked)
@VERSIONS
async def test_rejected_authorization_starts_no_transaction(csms: Any, v201: bool) -> None:
    await csms.add_token("BLOCKED1", status="Blocked")
    async with running(csms, v201) as (fleet, ch, cp_id):
        ev = random_ev(random.Random(1))
        assert await ch.start_session(1, "NOPE", ev) is None
        assert await ch.start_session(2, "BLOCKED1", ev) is None
        assert fleet.stats.auth_rejected == {"Invalid": 1, "Blocked": 1}
        assert fleet.stats.sent["Authorize"] == 2
        await wait_status(csms, cp_id, 1, "Available")
        await wait_status(csms, cp_id, 2, "Available")
        assert "StartTransaction" not in fleet.stats.sent
        assert "TransactionEvent" not in fleet.stats.sent
        assert await csms.pool.fetchval("SELECT count(*) FROM sessions") == 0
        assert fleet.summary().sessions_started == 0


@VERSIONS
async def test_remote_start_for_an_unknown_token_is_deauthorized(csms: Any, v201: bool) -> None:
    async with running(csms, v201) as (fleet, _ch, cp_id):
        start: Any = (
            call201.RequestStartTransaction(id_token=token("NOPE"), remote_start_id=4, evse_id=1)
            if v201
            else call16.RemoteStartTransaction(id_tag="NOPE", connector_id=1)
        )
        # AuthorizeRemoteTxRequests is false: the token is checked by the transaction start.
        assert (await csms.router.call(cp_id, start)).status == "Accepted"
        row = await eventually(
            lambda: csms.pool.fetchrow(
                "SELECT * FROM sessions WHERE charge_point_id = $1 AND ended_at IS NOT NULL",
                cp_id,
            )
        )
        assert row["stop_reason"] == "DeAuthorized"
        assert row["auth_status"] == "Invalid"
        await until(lambda: fleet.stats.sessions_deauthorized == 1)
        await wait_status(csms, cp_id, 1, "Available")
