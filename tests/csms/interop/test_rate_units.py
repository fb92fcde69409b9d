"""Profiles reach each charger in a unit it takes, with a start where the spec needs one."""

from __future__ import annotations

from typing import Any

import pytest

from charge_point_sim.profiles import Profile, Purpose
from csms.interop.service import InteropService
from tests.charge_point_sim.support import running, start_tx, until
from tests.csms.api.conftest import Api
from tests.smart_charging.support import watch_profiles
from tests.waiting import eventually

MAX_16A = {"id": 5, "stack_level": 0, "purpose": "charger_max",
           "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16}]}}  # fmt: skip


async def _learned_units(api: Api, cp: str) -> list[str] | None:
    units = await api.csms.pool.fetchval(
        "SELECT units FROM charger_rate_units WHERE charge_point_id = $1", cp
    )
    return None if units is None else list(units)


def _sent_profile(answer: dict[str, Any]) -> dict[str, Any]:
    request = answer["request"]
    return request.get("csChargingProfiles") or request["chargingProfile"]


def _sent_schedule(answer: dict[str, Any]) -> dict[str, Any]:
    schedule = _sent_profile(answer)["chargingSchedule"]
    return schedule[0] if isinstance(schedule, list) else schedule


async def _set_profile(api: Api, cp: str, profile: dict[str, Any]) -> Any:
    return await api.operator.post(
        f"/chargers/{cp}/commands/set_charging_profile",
        json={"connector_id": 0, "profile": profile},
    )


@pytest.mark.parametrize("v201", [False, True], ids=["ocpp1.6", "ocpp2.0.1"])
async def test_a_w_only_charger_gets_w(api: Api, v201: bool) -> None:
    async with running(api.csms, v201, rate_units="W") as (_, ch, cp):
        assert await eventually(lambda: _learned_units(api, cp)) == ["W"]
        answer = await _set_profile(api, cp, MAX_16A)
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"]["status"] == "Accepted"
        schedule = _sent_schedule(answer.json())
        assert schedule["chargingRateUnit"] == "W"
        assert schedule["chargingSchedulePeriod"][0]["limit"] == 16 * 3 * 230.0
        assert schedule["startSchedule"]  # completed: Absolute never leaves without one
        [installed] = [p for p in ch.profiles.profiles if p.id == 5]
        assert installed.unit == "W" and installed.start_schedule is not None
        charger = (await api.reader.get(f"/chargers/{cp}")).json()
        assert charger["charging_rate_units"]["units"] == ["W"]


async def test_an_a_only_charger_gets_a(api: Api) -> None:
    async with running(api.csms, True, rate_units="A") as (_, ch, cp):
        assert await eventually(lambda: _learned_units(api, cp)) == ["A"]
        in_w = {**MAX_16A, "schedule": {"unit": "W", "periods": [
            {"start_period": 0, "limit": 7400, "number_phases": 1}]}}  # fmt: skip
        answer = await _set_profile(api, cp, in_w)
        assert answer.status_code == 200, answer.text
        schedule = _sent_schedule(answer.json())
        assert schedule["chargingRateUnit"] == "A"
        assert schedule["chargingSchedulePeriod"][0]["limit"] == 32.1  # 7400 W / 230 V, down
        assert [p.unit for p in ch.profiles.profiles if p.id == 5] == ["A"]


async def test_without_the_csms_fitting_it_the_w_only_charger_refuses_a(api: Api) -> None:
    # The simulator really is W-only: the same profile in A, sent as is, is Rejected.
    from ocpp.v201 import call as call201

    async with running(api.csms, True, rate_units="W") as (_, _ch, cp):
        await eventually(lambda: _learned_units(api, cp))
        raw = call201.SetChargingProfile(evse_id=0, charging_profile={
            "id": 6, "stack_level": 0, "charging_profile_purpose": "ChargingStationMaxProfile",
            "charging_profile_kind": "Absolute", "charging_schedule": [{
                "id": 1, "start_schedule": "2026-01-01T00:00:00Z", "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 16}]}]})  # fmt: skip
        assert (await api.csms.router.call(cp, raw)).status == "Rejected"


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"purpose": "tx_default", "schedule": {"unit": "A", "periods": [
            {"start_period": 0, "limit": 6}, {"start_period": 3600, "limit": 16}]}},
         "several periods or a duration needs schedule.start_schedule"),
        ({"purpose": "tx", "schedule": {"unit": "A", "duration": 3600, "periods": [
            {"start_period": 0, "limit": 6}]}}, "needs schedule.start_schedule"),
        ({"purpose": "tx_default", "kind": "recurring", "schedule": {"unit": "A", "periods": [
            {"start_period": 0, "limit": 6}]}}, "recurring profile needs recurrency"),
        ({"purpose": "tx_default", "kind": "recurring", "recurrency": "daily", "schedule": {
            "unit": "A", "periods": [{"start_period": 0, "limit": 6}]}},
         "recurring profile needs"),
        ({"purpose": "tx_default", "kind": "relative", "schedule": {
            "unit": "A", "start_schedule": "2026-12-05T00:00:00Z",
            "periods": [{"start_period": 0, "limit": 6}]}}, "leave schedule.start_schedule out"),
        ({"purpose": "charger_max", "kind": "relative", "schedule": {
            "unit": "A", "periods": [{"start_period": 0, "limit": 6}]}}, "cannot be relative"),
        ({"purpose": "tx_default", "recurrency": "daily", "schedule": {
            "unit": "A", "start_schedule": "2026-12-05T00:00:00Z",
            "periods": [{"start_period": 0, "limit": 6}]}}, "only for kind 'recurring'"),
    ],
)  # fmt: skip
async def test_the_api_refuses_an_ambiguous_profile(
    api: Api, profile: dict[str, Any], message: str
) -> None:
    answer = await _set_profile(api, "ANY", {"id": 9, "stack_level": 1, **profile})
    assert answer.status_code == 422
    assert message in answer.json()["error"]


@pytest.mark.parametrize("v201", [False, True], ids=["ocpp1.6", "ocpp2.0.1"])
async def test_the_api_completes_an_absolute_profile_without_start(api: Api, v201: bool) -> None:
    async with running(api.csms, v201) as (_, ch, cp):
        # The interop report's exact request: charger max, Absolute by default, no start.
        answer = await _set_profile(api, cp, {**MAX_16A, "schedule": {
            "unit": "W", "periods": [{"start_period": 0, "limit": 7400.0}]}})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert _sent_profile(answer.json())["chargingProfileKind"] == "Absolute"
        assert _sent_schedule(answer.json())["startSchedule"].endswith("Z")
        # A charger_max schedule of several periods means "from now": completed too.
        periods = [{"start_period": 0, "limit": 16}, {"start_period": 600, "limit": 8}]
        answer = await _set_profile(api, cp, {**MAX_16A, "id": 7, "schedule": {
            "unit": "A", "periods": periods}})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert _sent_schedule(answer.json())["startSchedule"]
        assert all(p.start_schedule is not None for p in ch.profiles.profiles)


@pytest.mark.parametrize("v201", [False, True], ids=["ocpp1.6", "ocpp2.0.1"])
async def test_the_load_manager_sends_a_w_only_charger_w_and_never_an_open_absolute(
    api: Api, v201: bool
) -> None:
    await api.csms.add_token("TAG1")
    seen: list[tuple[str, Profile]] = []
    async with running(api.csms, v201, rate_units="W", connectors=1) as (fleet, _ch, cp):
        await eventually(lambda: _learned_units(api, cp))
        watch_profiles(fleet, lambda _, status, profile: seen.append((status, profile)))
        # A 0 A fallback: the session waits for its TxProfile (the failsafe share of a
        # one-charger site would already be the charger's whole allocation).
        site = {"site_id": "s", "phase_limit_a": 20, "fallback_current_a": 0}
        created = await api.operator.post("/sites", json=site)
        assert created.status_code in (200, 201), created.text
        placed = await api.operator.put(
            f"/chargers/{cp}/site", json={"site_id": "s", "max_current_a": 16}
        )
        assert placed.status_code == 200, placed.text
        await start_tx(api.csms, cp, v201)
        await until(lambda: any(p.purpose is Purpose.TX for _, p in seen), within=20)
    purposes = {p.purpose for _, p in seen}
    assert {Purpose.MAX, Purpose.TX_DEFAULT, Purpose.TX} <= purposes, seen
    assert {p.unit for _, p in seen} == {"W"}
    assert {status for status, _ in seen} == {"Accepted"}
    assert all(p.start_schedule is not None for _, p in seen if p.kind == "Absolute")
    maximum = next(p for _, p in seen if p.purpose is Purpose.MAX)
    assert maximum.periods[0].limit == 16 * 3 * 230.0  # the charger's 16 A on three lines


async def test_a_charger_reconnecting_without_a_boot_is_asked_when_nothing_is_known(
    api: Api,
) -> None:
    # A CSMS upgrade: chargers reconnect without rebooting, their units never learned.
    [service] = [s for s in api.csms.app.services if isinstance(s, InteropService)]
    service.boot_wait = 0.5
    async with running(api.csms, True, rate_units="W") as (_, ch, cp):
        await eventually(lambda: _learned_units(api, cp))
        asked = ch.stats.received["GetVariables"]
        await api.csms.pool.execute("DELETE FROM charger_rate_units WHERE charge_point_id = $1", cp)
        ch.drop_connection()
        assert await eventually(lambda: _learned_units(api, cp), within=15) == ["W"]
        assert ch.stats.received["GetVariables"] == asked + 1
        assert ch.stats.sent["BootNotification"] == 1  # it did not boot again
