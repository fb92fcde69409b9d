"""The raw OCPP endpoint: any CSMS-initiated action of the charger's version, schema-checked."""

from __future__ import annotations

from typing import Any

import pytest

from charge_point_sim import Fleet
from tests.csms.api.conftest import CHARGER, Api
from tests.ocpp_clients import charger_v201
from tests.waiting import eventually


async def raw(api: Api, charger: str, action: str, payload: dict[str, Any]) -> Any:
    return await api.operator.post(f"/chargers/{charger}/ocpp/{action}", json=payload)


async def audit_row(api: Api, audit_id: int) -> Any:
    return await api.csms.pool.fetchrow("SELECT * FROM command_audit WHERE id = $1", audit_id)


async def test_raw_action_reaches_the_charger_and_answers_its_payload(
    api: Api, fleet: Fleet
) -> None:
    v16 = await raw(api, CHARGER["ocpp1.6"], "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert v16.status_code == 200, v16.text
    keys = v16.json()["response"]["configurationKey"]
    assert [k["key"] for k in keys] == ["HeartbeatInterval"]
    assert v16.json()["request"] == {"key": ["HeartbeatInterval"]}

    v201 = await raw(
        api,
        CHARGER["ocpp2.0.1"],
        "GetVariables",
        {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                              "variable": {"name": "HeartbeatInterval"}}]},
    )  # fmt: skip
    assert v201.status_code == 200, v201.text
    result = v201.json()["response"]["getVariableResult"][0]
    assert result["attributeStatus"] == "Accepted" and result["attributeValue"]

    row = await audit_row(api, v201.json()["audit_id"])
    assert (row["command"], row["outcome"], row["actor"]) == (
        "ocpp/GetVariables",
        "answered",
        "ops-team",
    )
    assert row["protocol"] == "ocpp2.0.1" and "HeartbeatInterval" in row["request"]


@pytest.mark.parametrize(
    ("protocol", "action", "payload", "why"),
    [
        ("ocpp2.0.1", "Reset", {"type": "Sideways"}, "Sideways"),
        ("ocpp2.0.1", "Reset", {}, "'type' is a required property"),
        ("ocpp1.6", "ChangeConfiguration", {"key": "A", "value": 5}, "value"),
        ("ocpp1.6", "GetVariables", {"getVariableData": []}, "not an action of OCPP 1.6"),
        ("ocpp2.0.1", "GetConfiguration", {}, "not an action of OCPP 2.0.1"),
        ("ocpp2.0.1", "BootNotification", {}, "sent by the charger"),
        ("ocpp1.6", "Heartbeat", {}, "sent by the charger"),
    ],
)
async def test_refused_before_sending_with_the_reason(
    api: Api, fleet: Fleet, protocol: str, action: str, payload: dict[str, Any], why: str
) -> None:
    charger = fleet.charger(CHARGER[protocol])
    before = dict(charger.stats.received)
    answer = await raw(api, CHARGER[protocol], action, payload)
    assert answer.status_code == 422, answer.text
    assert why in answer.json()["error"]
    row = await audit_row(api, answer.json()["audit_id"])
    assert (row["command"], row["outcome"]) == (f"ocpp/{action}", "rejected_by_csms")
    # Nothing went to the charger; a harmless command after it does reach it.
    assert (await raw(api, CHARGER[protocol], "ClearCache", {})).status_code == 200
    assert charger.stats.received[action] == before.get(action, 0)
    assert charger.stats.received["ClearCache"] == before.get("ClearCache", 0) + 1


async def test_not_connected_callerror_and_role(api: Api, fleet: Fleet) -> None:
    offline = await raw(api, "NOBODY", "ClearCache", {})
    assert offline.status_code == 409
    assert (await audit_row(api, offline.json()["audit_id"]))["outcome"] == "not_connected"

    reader = await api.reader.post(f"/chargers/{CHARGER['ocpp1.6']}/ocpp/ClearCache", json={})
    assert reader.status_code == 403

    async with charger_v201(api.csms.ocpp_url, "PLAIN201"):  # handles no commands at all
        await eventually(
            lambda: api.csms.pool.fetchval(
                "SELECT connected FROM chargers WHERE charge_point_id = 'PLAIN201'"
            )
        )
        failed = await raw(api, "PLAIN201", "ClearCache", {})
    assert failed.status_code == 502
    assert failed.json()["call_error"]["code"] in {"NotImplemented", "NotSupported"}
