"""Every operator command, round trip to simulated chargers of both versions, and its audit row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from charge_point_sim import Fleet
from tests.csms.api.conftest import CHARGER, Api
from tests.ocpp_clients import charger_v16, raw_charger
from tests.waiting import eventually

BOTH = pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
SOON = (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def command(api: Api, charger: str, name: str, body: dict[str, Any] | None = None) -> Any:
    return await api.operator.post(f"/chargers/{charger}/commands/{name}", json=body or {})


async def audit_row(api: Api, audit_id: int) -> Any:
    return await api.csms.pool.fetchrow("SELECT * FROM command_audit WHERE id = $1", audit_id)


@BOTH
async def test_remote_start_and_stop_make_a_real_session(
    api: Api, fleet: Fleet, protocol: str
) -> None:
    charger = CHARGER[protocol]
    started = await command(
        api, charger, "remote_start", {"connector_id": 1, "id_token": "DRIVER-1"}
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["response"]["status"] == "Accepted" and body["protocol"] == protocol
    wire_name = "idTag" if protocol == "ocpp1.6" else "idToken"
    assert wire_name in body["request"]
    session = await eventually(
        lambda: api.csms.pool.fetchrow(
            "SELECT * FROM sessions WHERE charge_point_id = $1 AND status = 'active'", charger
        )
    )
    assert session["id_token"] == "DRIVER-1" and session["evse_id"] == 1
    await eventually(
        lambda: api.csms.pool.fetchval(
            "SELECT energy_wh > 0 FROM sessions WHERE id = $1", session["id"]
        ),
        within=15,
    )

    stopped = await command(
        api, charger, "remote_stop", {"transaction_id": session["transaction_id"]}
    )
    assert stopped.status_code == 200 and stopped.json()["response"]["status"] == "Accepted"
    ended = await eventually(
        lambda: api.csms.pool.fetchrow(
            "SELECT * FROM sessions WHERE id = $1 AND status = 'ended'", session["id"]
        )
    )
    assert ended["stop_reason"] == "Remote"

    row = await audit_row(api, started.json()["audit_id"])
    assert (row["actor"], row["charge_point_id"], row["command"], row["outcome"]) == (
        "ops-team",
        charger,
        "remote_start",
        "answered",
    )
    assert row["protocol"] == protocol and '"Accepted"' in row["response"]
    assert '"DRIVER-1"' in row["request"] and row["duration_ms"] > 0


COMMON = [
    ("reset", {"type": "soft"}, {"status"}),
    ("unlock_connector", {"connector_id": 2}, {"status"}),
    ("trigger_message", {"message": "Heartbeat"}, {"status"}),
    ("data_transfer", {"vendor_id": "com.example", "message_id": "ping", "data": "x"}, {"status"}),
    (
        "update_firmware",
        {"location": "https://fw.example/1.2.bin", "retrieve_at": SOON},
        set(),  # 1.6 UpdateFirmware.conf is empty
    ),
    ("get_diagnostics", {"location": "ftp://logs.example/"}, set()),
    ("reserve_now", {"connector_id": 2, "id_token": "DRIVER-1", "expires_at": SOON}, {"status"}),
    ("cancel_reservation", {"reservation_id": 999}, {"status"}),
    ("send_local_list", {"version": 3, "tokens": [{"id_token": "DRIVER-1"}]}, {"status"}),
    ("get_local_list_version", None, set()),
    ("clear_cache", None, {"status"}),
    ("get_composite_schedule", {"connector_id": 1, "duration": 3600}, {"status"}),
    ("clear_charging_profile", {"profile_id": 1234}, {"status"}),
]


@BOTH
@pytest.mark.parametrize(("name", "body", "keys"), COMMON, ids=[c[0] for c in COMMON])
async def test_command_round_trip(
    api: Api, fleet: Fleet, protocol: str, name: str, body: dict[str, Any] | None, keys: set[str]
) -> None:
    answer = await command(api, CHARGER[protocol], name, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert keys <= result["response"].keys()
    row = await audit_row(api, result["audit_id"])
    assert (row["command"], row["outcome"]) == (name, "answered")


async def test_local_list_version_round_trips(api: Api, fleet: Fleet) -> None:
    for charger in CHARGER.values():
        sent = await command(
            api, charger, "send_local_list", {"version": 7, "tokens": [{"id_token": "A"}]}
        )
        assert sent.json()["response"]["status"] == "Accepted"
        version = await command(api, charger, "get_local_list_version")
        key = "listVersion" if charger == CHARGER["ocpp1.6"] else "versionNumber"
        assert version.json()["response"][key] == 7


async def test_availability_and_charging_profile_change_what_the_charger_does(
    api: Api, fleet: Fleet
) -> None:
    for charger in CHARGER.values():
        answer = await command(
            api, charger, "change_availability", {"connector_id": 2, "operative": False}
        )
        assert answer.json()["response"]["status"] == "Accepted"
        await eventually(
            lambda c=charger: api.csms.pool.fetchval(
                "SELECT status = 'Unavailable' FROM connectors"
                " WHERE charge_point_id = $1 AND evse_id = 2",
                c,
            )
        )
        profile = {
            "id": 5,
            "stack_level": 1,
            "purpose": "tx_default",
            "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": 10}]},
        }
        installed = await command(
            api, charger, "set_charging_profile", {"connector_id": 1, "profile": profile}
        )
        assert installed.json()["response"]["status"] == "Accepted"
        schedule = await command(
            api,
            charger,
            "get_composite_schedule",
            {"connector_id": 1, "duration": 600, "unit": "A"},
        )
        assert "10" in str(schedule.json()["response"])


async def test_configuration_is_per_version(api: Api, fleet: Fleet) -> None:
    v16, v201 = CHARGER["ocpp1.6"], CHARGER["ocpp2.0.1"]
    got = await command(api, v16, "get_configuration", {"keys": ["HeartbeatInterval"]})
    assert (
        got.status_code == 200
        and got.json()["response"]["configurationKey"][0]["key"] == "HeartbeatInterval"
    )
    changed = await command(
        api, v16, "change_configuration", {"key": "MeterValueSampleInterval", "value": "15"}
    )
    assert changed.json()["response"]["status"] == "Accepted"
    variables = await command(
        api,
        v201,
        "get_variables",
        {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
    )
    assert variables.json()["response"]["getVariableResult"][0]["attributeStatus"] == "Accepted"
    set_answer = await command(
        api,
        v201,
        "set_variables",
        {
            "variables": [
                {"component": "SampledDataCtrlr", "variable": "TxUpdatedInterval", "value": "15"}
            ]
        },
    )
    assert set_answer.json()["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"

    wrong = await command(api, v201, "get_configuration", {})
    assert wrong.status_code == 400 and "1.6 command" in wrong.json()["error"]
    row = await audit_row(api, wrong.json()["audit_id"])
    assert row["outcome"] == "rejected_by_csms"


async def test_offline_charger_is_409_and_audited(api: Api) -> None:
    answer = await command(api, "NOBODY", "reset", {"type": "hard"})
    assert answer.status_code == 409 and "not connected" in answer.json()["error"]
    assert (await audit_row(api, answer.json()["audit_id"]))["outcome"] == "not_connected"


async def test_silent_charger_is_504(api: Api) -> None:
    async with raw_charger(api.csms.ocpp_url, "MUTE", "ocpp1.6"):
        await eventually(
            lambda: api.csms.pool.fetchval(
                "SELECT connected FROM chargers WHERE charge_point_id = 'MUTE'"
            )
        )
        answer = await command(api, "MUTE", "clear_cache")
    assert answer.status_code == 504 and "did not answer within 2s" in answer.json()["error"]
    assert (await audit_row(api, answer.json()["audit_id"]))["outcome"] == "timeout"


async def test_charger_callerror_is_502_with_its_code(api: Api) -> None:
    async with charger_v16(
        api.csms.ocpp_url, "PLAIN"
    ):  # the ocpp library's charger handles no commands
        await eventually(
            lambda: api.csms.pool.fetchval(
                "SELECT connected FROM chargers WHERE charge_point_id = 'PLAIN'"
            )
        )
        answer = await command(api, "PLAIN", "clear_cache")
    assert answer.status_code == 502
    assert answer.json()["call_error"]["code"] in {"NotImplemented", "NotSupported"}
    assert (await audit_row(api, answer.json()["audit_id"]))["outcome"] == "call_error"


async def test_bad_bodies_name_the_field(api: Api, fleet: Fleet) -> None:
    missing = await command(api, CHARGER["ocpp1.6"], "remote_start", {"connector_id": 1})
    assert missing.status_code == 422 and missing.json()["error"] == "id_token: Field required"
    wrong = await command(api, CHARGER["ocpp1.6"], "reset", {"type": "sideways"})
    assert wrong.status_code == 422 and wrong.json()["error"].startswith("type: ")
    extra = await command(api, CHARGER["ocpp1.6"], "clear_cache", {"force": True})
    assert extra.status_code == 422 and "force" in extra.json()["error"]
    unknown = await command(api, CHARGER["ocpp1.6"], "self_destruct")
    assert unknown.status_code == 404 and "remote_start" in unknown.json()["error"]
    on_idle = await command(api, CHARGER["ocpp1.6"], "reset", {"when": "on_idle"})
    assert on_idle.status_code == 400 and "on_idle" in on_idle.json()["error"]
