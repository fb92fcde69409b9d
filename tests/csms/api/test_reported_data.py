"""What 2.0.1 and 1.6 chargers report beyond sessions: stored, and what the API returns.

Every flow runs against the simulator's charger of the matching version, driven
through the raw OCPP endpoint or the friendly commands.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from charge_point_sim import Fleet
from charge_point_sim.config import V201_VARIABLES
from charge_point_sim.v16 import V16Charger
from charge_point_sim.v201 import V201Charger
from csms.storage.charging_needs import latest_charging_needs
from tests.csms.api.conftest import CHARGER, Api
from tests.waiting import eventually

V16, V201 = CHARGER["ocpp1.6"], CHARGER["ocpp2.0.1"]


async def raw(api: Api, charger: str, action: str, payload: dict[str, Any]) -> Any:
    answer = await api.operator.post(f"/chargers/{charger}/ocpp/{action}", json=payload)
    assert answer.status_code == 200, answer.text
    return answer.json()["response"]


async def get(api: Api, path: str, **params: Any) -> Any:
    answer = await api.reader.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_base_report_in_batches_fills_the_device_model(api: Api, fleet: Fleet) -> None:
    station = cast(V201Charger, fleet.charger(V201))
    station.keys.force("GetConfigurationMaxKeys", "7")  # ItemsPerMessage
    answer = await raw(api, V201, "GetBaseReport", {"requestId": 42, "reportBase": "FullInventory"})
    assert answer["status"] == "Accepted"

    async def complete_report() -> Any:
        reports = (await get(api, f"/chargers/{V201}/device-model"))["reports"]
        return [r for r in reports if r["request_id"] == 42 and r["complete"]]

    [report] = await eventually(complete_report)
    # Every variable the station has (TariffCostCtrlr only with a cost display).
    expected = sum(1 for name in V201_VARIABLES.values() if station.keys.get(name) is not None)
    assert report["items"] == expected and report["parts"] == math.ceil(expected / 7) > 1
    model = await get(
        api,
        f"/chargers/{V201}/device-model",
        component="OCPPCommCtrlr",
        variable="HeartbeatInterval",
    )
    [heartbeat] = model["variables"]
    assert heartbeat["value"] == station.keys.get("HeartbeatInterval").value  # type: ignore[union-attr]
    assert heartbeat["mutability"] == "ReadWrite" and heartbeat["source"] == "NotifyReport"
    assert heartbeat["characteristics"]["data_type"] == "integer"

    # SetVariables answers update the stored value; a rejected one keeps the old value.
    done = await api.operator.post(
        f"/chargers/{V201}/commands/set_variables",
        json={
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "77"},
                {"component": "LocalAuthListCtrlr", "variable": "Entries", "value": "5"},
            ]
        },
    )
    assert done.status_code == 200, done.text
    model = await get(api, f"/chargers/{V201}/device-model")
    values = {(v["component"], v["variable"]): v for v in model["variables"]}
    assert values["OCPPCommCtrlr", "HeartbeatInterval"]["value"] == "77"
    assert values["OCPPCommCtrlr", "HeartbeatInterval"]["source"] == "SetVariables"
    assert values["LocalAuthListCtrlr", "Entries"]["attribute_status"] == "Rejected"
    assert values["LocalAuthListCtrlr", "Entries"]["value"] == "1000"

    # NotifyEvent's actual value is the variable's value now.
    await station.notify_event("OCPPCommCtrlr", "HeartbeatInterval", "88")
    model = await get(api, f"/chargers/{V201}/device-model", variable="HeartbeatInterval")
    assert model["variables"][0]["value"] == "88"
    assert model["variables"][0]["source"] == "NotifyEvent"


async def test_monitors_set_reported_and_cleared(api: Api, fleet: Fleet) -> None:
    monitor = {
        "value": 10,
        "type": "Delta",
        "severity": 5,
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"},
    }
    unknown = {**monitor, "component": {"name": "Nope"}, "variable": {"name": "Nothing"}}
    answer = await raw(
        api, V201, "SetVariableMonitoring", {"setMonitoringData": [monitor, unknown]}
    )
    results = answer["setMonitoringResult"]
    assert [r["status"] for r in results] == ["Accepted", "UnknownVariable"]
    [stored] = (await get(api, f"/chargers/{V201}/monitors"))["monitors"]
    assert (stored["monitor_id"], stored["variable"], stored["value"]) == (
        results[0]["id"],
        "HeartbeatInterval",
        10.0,
    )

    # A change of the watched variable raises a NotifyEvent tied to the monitor.
    changed = await api.operator.post(
        f"/chargers/{V201}/commands/set_variables",
        json={
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "123"}
            ]
        },
    )
    assert changed.status_code == 200, changed.text

    async def raised() -> Any:
        [watched] = (await get(api, f"/chargers/{V201}/monitors"))["monitors"]
        return watched if watched["last_event_value"] == "123" else None

    assert (await eventually(raised))["last_event_at"] is not None

    assert (await raw(api, V201, "GetMonitoringReport", {"requestId": 5}))["status"] == "Accepted"
    part = (await eventually(lambda: _reports(api, "NotifyMonitoringReport", 5)))[0]
    assert part["data"]["monitor"][0]["variable_monitoring"][0]["type"] == "Delta"

    cleared = await raw(api, V201, "ClearVariableMonitoring", {"id": [results[0]["id"], 999]})
    assert [r["status"] for r in cleared["clearMonitoringResult"]] == ["Accepted", "NotFound"]
    assert (await get(api, f"/chargers/{V201}/monitors"))["monitors"] == []


async def _reports(api: Api, action: str, request_id: int | None = None) -> list[Any]:
    params: dict[str, Any] = {"action": action}
    if request_id is not None:
        params["request_id"] = request_id
    found: list[Any] = (await get(api, f"/chargers/{V201}/reports", **params))["reports"]
    return found


async def test_display_messages_customer_information_and_profiles_are_stored(
    api: Api, fleet: Fleet
) -> None:
    message = {
        "id": 3,
        "priority": "NormalCycle",
        "message": {"format": "UTF8", "content": "Welcome"},
    }
    assert (await raw(api, V201, "SetDisplayMessage", {"message": message}))["status"] == "Accepted"
    [set_] = (await get(api, f"/chargers/{V201}/display-messages"))["display_messages"]
    assert (set_["priority"], set_["source"]) == ("NormalCycle", "SetDisplayMessage")
    got = await raw(api, V201, "GetDisplayMessages", {"requestId": 8})
    assert got["status"] == "Accepted"
    [shown] = await eventually(lambda: _reports(api, "NotifyDisplayMessages", 8))
    assert shown["data"]["message_info"][0]["message"]["content"] == "Welcome"
    [kept] = (await get(api, f"/chargers/{V201}/display-messages"))["display_messages"]
    assert (kept["message_id"], kept["content"], kept["source"]) == (
        3,
        "Welcome",
        "NotifyDisplayMessages",
    )
    cleared = await raw(api, V201, "ClearDisplayMessage", {"id": 3})
    assert cleared["status"] == "Accepted"
    assert (await get(api, f"/chargers/{V201}/display-messages"))["display_messages"] == []

    info = await raw(
        api,
        V201,
        "CustomerInformation",
        {
            "requestId": 9,
            "report": True,
            "clear": False,
            "idToken": {"idToken": "DRIVER-1", "type": "ISO14443"},
        },
    )
    assert info["status"] == "Accepted"
    [customer] = await eventually(lambda: _reports(api, "NotifyCustomerInformation", 9))
    assert customer["seq_no"] == 0 and "DRIVER-1" in customer["data"]["data"]

    profile = {
        "connector_id": 1,
        "profile": {
            "id": 71,
            "stack_level": 1,
            "purpose": "tx_default",
            "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 16}]},
        },
    }
    sent = await api.operator.post(f"/chargers/{V201}/commands/set_charging_profile", json=profile)
    assert sent.json()["response"]["status"] == "Accepted", sent.text
    asked = await raw(
        api,
        V201,
        "GetChargingProfiles",
        {"requestId": 10, "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"}},
    )
    assert asked["status"] == "Accepted"
    [reported] = await eventually(lambda: _reports(api, "ReportChargingProfiles", 10))
    assert reported["evse_id"] == 1 and reported["data"]["charging_profile"][0]["id"] == 71
    none = await raw(
        api,
        V201,
        "GetChargingProfiles",
        {"requestId": 11, "chargingProfile": {"chargingProfileId": [12345]}},
    )
    assert none["status"] == "NoProfiles"


async def test_charging_needs_and_external_limits_feed_the_planner(api: Api, fleet: Fleet) -> None:
    station = cast(V201Charger, fleet.charger(V201))
    departure = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    answer = await station.send_charging_needs(1, departure, 24_000)
    assert answer.status == "Processing"
    [needs] = await latest_charging_needs(api.csms.pool, V201)
    assert (needs.evse_id, needs.departure_time, needs.energy_amount_wh) == (1, departure, 24000.0)
    assert needs.requested_energy_transfer == "AC_three_phase"
    assert needs.needs["ac_charging_parameters"]["ev_max_current"] == 32

    await station.send_charging_limit("EMS", 10.0, evse_id=1, grid_critical=True)
    await station.send_charging_limit("SO", 20.0)
    body = await get(api, f"/chargers/{V201}/charging-needs")
    assert body["charging_needs"][0]["energy_amount_wh"] == 24000.0
    limits = {(x["evse_id"], x["source"]): x for x in body["external_limits"]}
    assert set(limits) == {(1, "EMS"), (0, "SO")} and limits[1, "EMS"]["grid_critical"] is True
    assert limits[1, "EMS"]["schedules"][0]["charging_schedule_period"][0]["limit"] == 10.0
    await station.clear_charging_limit("EMS", evse_id=1)
    body = await get(api, f"/chargers/{V201}/charging-needs")
    assert [(x["evse_id"], x["source"]) for x in body["external_limits"]] == [(0, "SO")]

    assert (await station.send_ev_charging_schedule(1, 13.0)).status == "Accepted"
    [schedule] = await _reports(api, "NotifyEVChargingSchedule")
    assert schedule["evse_id"] == 1
    assert schedule["data"]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 13.0


async def test_security_events_of_both_versions_are_kept(api: Api, fleet: Fleet) -> None:
    await cast(V16Charger, fleet.charger(V16)).send_security_event(
        "TamperDetectionActivated", "lid"
    )
    await cast(V201Charger, fleet.charger(V201)).send_security_event("InvalidFirmwareSignature")
    old = await get(api, f"/chargers/{V16}/security-events")
    new = await get(api, f"/chargers/{V201}/security-events")
    assert [(e["event_type"], e["tech_info"]) for e in old["security_events"]] == [
        ("TamperDetectionActivated", "lid")
    ]
    assert new["security_events"][0]["event_type"] == "InvalidFirmwareSignature"


async def test_v16_security_extension_firmware_and_log_status(api: Api, fleet: Fleet) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    signed = await api.operator.post(
        f"/chargers/{V16}/commands/update_firmware",
        json={
            "location": "https://fw.example/2.0.bin",
            "retrieve_at": soon,
            "signature": "c2lnbmF0dXJl",
            "signing_certificate": "-----BEGIN CERTIFICATE-----",
        },
    )
    assert signed.status_code == 200, signed.text
    assert "signature" in signed.json()["request"]["firmware"]
    assert signed.json()["response"]["status"] == "Accepted"
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT firmware_status = 'Installed' FROM chargers WHERE charge_point_id = $1", V16
        ),
        within=20,
    )
    triggered = await api.operator.post(
        f"/chargers/{V16}/commands/trigger_message", json={"message": "LogStatusNotification"}
    )
    assert triggered.json()["response"]["status"] == "Accepted", triggered.text
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT count(*) FROM events WHERE charge_point_id = $1 AND type = "
            "'upload_status_changed' AND payload->>'kind' = 'log'",
            V16,
        )
    )


async def test_publish_firmware_and_transaction_status(api: Api, fleet: Fleet) -> None:
    published = await raw(
        api,
        V201,
        "PublishFirmware",
        {"location": "https://fw.example/3.bin", "checksum": "ab" * 16, "requestId": 77},
    )
    assert published["status"] == "Accepted"

    async def published_part() -> list[Any]:
        parts = await _reports(api, "PublishFirmwareStatusNotification", 77)
        return [p for p in parts if p["data"]["status"] == "Published"]

    [done] = await eventually(published_part)
    assert done["data"]["location"][0].startswith("http://")
    unpublished = await raw(api, V201, "UnpublishFirmware", {"checksum": "ab" * 16})
    assert unpublished["status"] == "Unpublished"

    status = await raw(api, V201, "GetTransactionStatus", {"transactionId": "nope"})
    assert status == {"ongoingIndicator": False, "messagesInQueue": False}


async def test_v16_configuration_is_read_like_a_device_model(api: Api, fleet: Fleet) -> None:
    got = await api.operator.post(f"/chargers/{V16}/commands/get_configuration", json={})
    assert got.status_code == 200, got.text
    model = await get(api, f"/chargers/{V16}/device-model", component="OCPP16Configuration")
    keys = {v["variable"]: v for v in model["variables"]}
    assert keys["NumberOfConnectors"]["mutability"] == "ReadOnly"
    assert keys["HeartbeatInterval"]["mutability"] == "ReadWrite"

    changed = await api.operator.post(
        f"/chargers/{V16}/commands/change_configuration",
        json={"key": "HeartbeatInterval", "value": "99"},
    )
    assert changed.json()["response"]["status"] == "Accepted", changed.text
    # The password is not a configuration value: the friendly command points elsewhere...
    refused = await api.operator.post(
        f"/chargers/{V16}/commands/change_configuration",
        json={"key": "AuthorizationKey", "value": "k" * 20},
    )
    assert refused.status_code == 400 and "password-rotation" in refused.json()["error"]
    # ... and an expert's raw change is never stored.
    await raw(api, V16, "ChangeConfiguration", {"key": "AuthorizationKey", "value": "k" * 20})
    model = await get(api, f"/chargers/{V16}/device-model", component="OCPP16Configuration")
    keys = {v["variable"]: v for v in model["variables"]}
    assert keys["HeartbeatInterval"]["value"] == "99"
    assert "AuthorizationKey" not in keys  # a secret is never stored
