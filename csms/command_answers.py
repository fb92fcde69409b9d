"""What the CSMS learns from a charger's answer to a command, stored after it answers.

GetVariables / SetVariables answers update the device model; SetVariableMonitoring
/ ClearVariableMonitoring answers update the monitors
(:mod:`csms.storage.device_model`); SetDisplayMessage / ClearDisplayMessage the
display messages (:mod:`csms.storage.display_messages`). Called by the command path of the operator
API (friendly and raw commands alike) with the ``ocpp`` request and answer
dataclasses, whose nested dicts have snake_case keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from csms.storage import device_model, display_messages

log = structlog.get_logger(__name__)

# Secrets a charger is given but never reports back; never stored in the device model.
WRITE_ONLY = frozenset({"BasicAuthPassword"})
WRITE_ONLY_16 = frozenset({"AuthorizationKey"})


def _monitor_match(result: dict[str, Any], asked: dict[str, Any]) -> bool:
    return all(result.get(k) == asked.get(k) for k in ("component", "variable", "type", "severity"))


async def record(pool: asyncpg.Pool, charge_point_id: str, request: Any, response: Any) -> None:
    """Store what ``response`` says; a failure here is logged, never the command's failure."""
    action = type(request).__name__
    at = datetime.now(UTC)
    try:
        if action == "GetVariables":
            await device_model.record_variable_results(
                pool, charge_point_id, "GetVariables", response.get_variable_result, {}, at
            )
        elif action == "SetVariables":
            values = {
                device_model.variable_key(i["component"], i["variable"], i.get("attribute_type")):
                None if i["variable"]["name"] in WRITE_ONLY else i["attribute_value"]
                for i in request.set_variable_data
            }  # fmt: skip
            await device_model.record_variable_results(
                pool, charge_point_id, "SetVariables", response.set_variable_result, values, at
            )
        elif action == "GetConfiguration":  # 1.6: keys as component "OCPP16Configuration"
            await device_model.record_configuration(
                pool, charge_point_id, response.configuration_key or [], at
            )
        elif action == "ChangeConfiguration" and response.status in ("Accepted", "RebootRequired"):
            if request.key not in WRITE_ONLY_16:
                key = {"key": request.key, "value": request.value}
                await device_model.record_configuration(pool, charge_point_id, [key], at)
        elif action == "SetVariableMonitoring":
            asked: list[dict[str, Any]] = list(request.set_monitoring_data)
            pairs = [
                (next((a for a in asked if _monitor_match(r, a)), None), r)
                for r in response.set_monitoring_result
            ]
            matched = [(a, r) for a, r in pairs if a is not None]
            await device_model.record_set_monitoring(
                pool, charge_point_id, [a for a, _ in matched], [r for _, r in matched], at
            )
        elif action == "SetDisplayMessage" and response.status == "Accepted":
            await display_messages.upsert(
                pool, charge_point_id, [request.message], "SetDisplayMessage", at
            )
        elif action == "ClearDisplayMessage" and response.status == "Accepted":
            await display_messages.remove(pool, charge_point_id, int(request.id))
        elif action == "ClearVariableMonitoring":
            cleared = [
                int(r["id"]) for r in response.clear_monitoring_result if r["status"] == "Accepted"
            ]
            await device_model.clear_monitors(pool, charge_point_id, cleared)
    except Exception:
        log.exception("command_answer.not_recorded", action=action)
