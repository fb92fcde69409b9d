"""Meter defaults as stored, and device-model reports teaching the CSMS (real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.storage import interop
from tests.conftest import RunningCsms
from tests.ocpp_clients import charger_v16, charger_v201
from tests.waiting import eventually

NOW = datetime.now(UTC).isoformat()


async def _stored_samples(csms: RunningCsms, cp: str) -> list[tuple[Any, ...]]:
    rows = await csms.pool.fetch(
        "SELECT measurand, context, location, phase, unit, value FROM meter_samples "
        "WHERE charge_point_id = $1 ORDER BY id",
        cp,
    )
    return [tuple(r) for r in rows]


DEFAULTS = ("Energy.Active.Import.Register", "Sample.Periodic", "Outlet", None, "Wh", 1234.0)


async def test_v16_meter_values_are_stored_with_the_spec_defaults(csms: RunningCsms) -> None:
    async with charger_v16(csms.ocpp_url, "CS16-M") as cp:
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                meter_value=[{"timestamp": NOW, "sampledValue": [{"value": "1234"}]}],
            )
        )
    assert await eventually(lambda: _stored_samples(csms, "CS16-M")) == [DEFAULTS]


async def test_v201_meter_values_are_stored_with_the_spec_defaults(csms: RunningCsms) -> None:
    async with charger_v201(csms.ocpp_url, "CS201-M") as cp:
        await cp.call(
            call201.MeterValues(
                evse_id=1, meter_value=[{"timestamp": NOW, "sampledValue": [{"value": 1234}]}]
            )
        )
    assert await eventually(lambda: _stored_samples(csms, "CS201-M")) == [DEFAULTS]


def _item(component: str, variable: str, value: str, instance: str | None = None) -> Any:
    var: dict[str, Any] = {"name": variable}
    if instance:
        var["instance"] = instance
    return {"component": {"name": component}, "variable": var,
            "variableAttribute": [{"type": "Actual", "value": value}]}  # fmt: skip


async def test_a_device_model_report_teaches_rate_units_and_cost_support(
    csms: RunningCsms,
) -> None:
    async def report(seq_no: int, *items: Any) -> None:
        await cp.call(call201.NotifyReport(request_id=1, generated_at=NOW, seq_no=seq_no,
                                           report_data=list(items)))  # fmt: skip

    async def facts() -> dict[str, Any]:
        return await interop.describe(csms.pool, "CS201-R")

    async with charger_v201(csms.ocpp_url, "CS201-R") as cp:
        await report(0, _item("SmartChargingCtrlr", "RateUnit", "W"),
                     _item("TariffCostCtrlr", "Enabled", "false", "Cost"))  # fmt: skip
        learned = await eventually(
            lambda: _when(facts(), lambda f: f["unsupported_actions"] and f["charging_rate_units"])
        )
        assert learned["charging_rate_units"]["units"] == ["W"]
        [action] = learned["unsupported_actions"]
        assert (action["action"], action["source"], action["detail"]) == (
            "CostUpdated", "device_model", "TariffCostCtrlr.Enabled[Cost]=false")  # fmt: skip
        # An operator enabled the cost display: the next report says so.
        await report(1, _item("TariffCostCtrlr", "Enabled", "true", "Cost"))
        await eventually(lambda: _when(facts(), lambda f: not f["unsupported_actions"]))


async def _when(value: Any, condition: Any) -> Any:
    result = await value
    return result if condition(result) else None
