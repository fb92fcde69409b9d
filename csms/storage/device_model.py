"""The 2.0.1 device model as the CSMS last knew it, and the charger's variable monitors.

Fed by NotifyReport parts (GetBaseReport / GetReport, in ``ItemsPerMessage``
batches sharing one requestId), GetVariables / SetVariables answers and
NotifyEvent actual values; NotifyMonitoringReport and SetVariableMonitoring /
ClearVariableMonitoring answers keep ``variable_monitors``. Payload dicts here
are the ``ocpp`` library's snake_case form of the OCPP types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from csms.storage import Executor

_KEY = (
    "charge_point_id, component, component_instance, evse_id, connector_id, "
    "variable, variable_instance, attribute_type"
)


def _component_key(component: dict[str, Any], variable: dict[str, Any]) -> tuple[Any, ...]:
    evse = component.get("evse") or {}
    return (
        str(component["name"]),
        str(component.get("instance") or ""),
        int(evse.get("id") or 0),
        int(evse.get("connector_id") or 0),
        str(variable["name"]),
        str(variable.get("instance") or ""),
    )


_TYPES = (
    "text",
    "text",
    "text",
    "int",
    "int",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bool",
    "bool",
    "jsonb",
    "text",
    "text",
    "timestamptz",
)
_COLUMNS = (
    f"{_KEY}, value, mutability, persistent, constant, characteristics, attribute_status, "
    "source, updated_at"
)
# One statement per batch (a report part is ItemsPerMessage variables): arrays in,
# unnest, upsert. Rows must have distinct keys within a batch (see _upsert).
_UPSERT = f"""
    INSERT INTO device_model_variables ({_COLUMNS})
    SELECT * FROM unnest({", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, 1))})
    ON CONFLICT ({_KEY}) DO UPDATE SET
        value = CASE WHEN EXCLUDED.source = 'SetVariables'
                          AND EXCLUDED.attribute_status NOT IN ('Accepted', 'RebootRequired')
                     THEN device_model_variables.value ELSE EXCLUDED.value END,
        mutability = COALESCE(EXCLUDED.mutability, device_model_variables.mutability),
        persistent = COALESCE(EXCLUDED.persistent, device_model_variables.persistent),
        constant = COALESCE(EXCLUDED.constant, device_model_variables.constant),
        characteristics = COALESCE(EXCLUDED.characteristics,
                                   device_model_variables.characteristics),
        attribute_status = COALESCE(EXCLUDED.attribute_status,
                                    device_model_variables.attribute_status),
        source = EXCLUDED.source,
        updated_at = EXCLUDED.updated_at
"""
_KEY_WIDTH = 8  # the primary key's columns, first in each row


async def _upsert(conn: Executor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Upsert rows; a key repeated in one batch keeps its last row (as a charger meant it)."""
    if not rows:
        return
    distinct = list({row[:_KEY_WIDTH]: row for row in rows}.values())
    await conn.execute(_UPSERT, *(list(column) for column in zip(*distinct, strict=True)))


async def record_report_part(
    conn: Executor,
    charge_point_id: str,
    request_id: int,
    seq_no: int,
    tbc: bool,
    report_data: Iterable[dict[str, Any]],
    at: datetime,
) -> None:
    """Store one NotifyReport part: every attribute of every variable, and the report's progress."""
    rows: list[tuple[Any, ...]] = []
    items = 0
    for item in report_data:
        items += 1
        key = _component_key(item["component"], item["variable"])
        characteristics = item.get("variable_characteristics")
        for attribute in item.get("variable_attribute") or [{}]:
            rows.append(
                (
                    charge_point_id,
                    *key,
                    attribute.get("type") or "Actual",
                    attribute.get("value"),
                    attribute.get("mutability"),
                    attribute.get("persistent"),
                    attribute.get("constant"),
                    None if characteristics is None else json.dumps(characteristics),
                    None,
                    "NotifyReport",
                    at,
                )
            )
    await _upsert(conn, rows)
    await conn.execute(
        """
        INSERT INTO device_model_reports (charge_point_id, request_id, parts, items,
                                          last_seq_no, complete, started_at, updated_at)
        VALUES ($1, $2, 1, $3, $4, NOT $5, $6, $6)
        ON CONFLICT (charge_point_id, request_id) DO UPDATE SET
            parts = device_model_reports.parts + 1,
            items = device_model_reports.items + EXCLUDED.items,
            last_seq_no = GREATEST(device_model_reports.last_seq_no, EXCLUDED.last_seq_no),
            complete = device_model_reports.complete OR EXCLUDED.complete,
            updated_at = EXCLUDED.updated_at
        """,
        charge_point_id,
        request_id,
        items,
        seq_no,
        tbc,
        at,
    )


async def record_variable_results(
    conn: Executor,
    charge_point_id: str,
    source: str,
    results: Iterable[dict[str, Any]],
    values: dict[tuple[Any, ...], str | None],
    at: datetime,
) -> None:
    """GetVariables / SetVariables answers; ``values`` maps a result's key to the value set."""
    rows = []
    for result in results:
        key = _component_key(result["component"], result["variable"])
        attribute_type = result.get("attribute_type") or "Actual"
        status = str(result["attribute_status"])
        if source == "GetVariables":
            value = result.get("attribute_value") if status == "Accepted" else None
            if status != "Accepted":
                continue  # nothing learnt about the variable's value
        else:
            value = values.get((*key, attribute_type))
        rows.append(
            (
                charge_point_id,
                *key,
                attribute_type,
                value,
                None,
                None,
                None,
                None,
                status,
                source,
                at,
            )
        )
    await _upsert(conn, rows)


def variable_key(
    component: dict[str, Any], variable: dict[str, Any], attribute_type: str | None
) -> tuple[Any, ...]:
    return (*_component_key(component, variable), attribute_type or "Actual")


async def record_event_values(
    conn: Executor, charge_point_id: str, event_data: Sequence[dict[str, Any]], at: datetime
) -> None:
    """NotifyEvent: each event's actualValue is the variable's Actual value now, and an
    event a monitor raised is the monitor's latest."""
    raised = [
        (charge_point_id, int(e["variable_monitoring_id"]), at, e.get("actual_value"))
        for e in event_data
        if e.get("variable_monitoring_id") is not None
    ]
    if raised:
        await conn.executemany(
            """
            UPDATE variable_monitors SET last_event_at = $3, last_event_value = $4
            WHERE charge_point_id = $1 AND monitor_id = $2
            """,
            raised,
        )
    rows = [
        (
            charge_point_id,
            *_component_key(e["component"], e["variable"]),
            "Actual",
            e.get("actual_value"),
            None,
            None,
            None,
            None,
            None,
            "NotifyEvent",
            at,
        )
        for e in event_data
    ]
    await _upsert(conn, rows)


CONFIGURATION_16 = "OCPP16Configuration"


async def record_configuration(
    conn: Executor, charge_point_id: str, keys: Iterable[dict[str, Any]], at: datetime
) -> None:
    """1.6 configuration keys (GetConfiguration answers, accepted ChangeConfigurations),
    kept as variables of one component so both versions are read the same way."""
    rows = []
    for key in keys:
        readonly = key.get("readonly")
        mutability = None if readonly is None else ("ReadOnly" if readonly else "ReadWrite")
        rows.append(
            (
                charge_point_id,
                CONFIGURATION_16,
                "",
                0,
                0,
                str(key["key"]),
                "",
                "Actual",
                key.get("value"),
                mutability,
                None,
                None,
                None,
                "Accepted",
                "GetConfiguration" if readonly is not None else "ChangeConfiguration",
                at,
            )
        )
    await _upsert(conn, rows)


async def variables(
    conn: Executor,
    charge_point_id: str,
    component: str | None = None,
    variable: str | None = None,
    evse_id: int | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT component, component_instance, evse_id, connector_id, variable,
               variable_instance, attribute_type, value, mutability, persistent, constant,
               characteristics, attribute_status, source, updated_at
        FROM device_model_variables
        WHERE charge_point_id = $1 AND ($2::text IS NULL OR component = $2)
          AND ($3::text IS NULL OR variable = $3) AND ($4::int IS NULL OR evse_id = $4)
        ORDER BY component, component_instance, evse_id, connector_id, variable,
                 variable_instance, attribute_type
        """,
        charge_point_id,
        component,
        variable,
        evse_id,
    )
    result = []
    for row in rows:
        item = dict(row)
        if item["characteristics"] is not None:
            item["characteristics"] = json.loads(item["characteristics"])
        result.append(item)
    return result


async def reports(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT request_id, parts, items, last_seq_no, complete, started_at, updated_at
        FROM device_model_reports WHERE charge_point_id = $1 ORDER BY started_at DESC
        """,
        charge_point_id,
    )
    return [dict(r) for r in rows]


# -- monitors -------------------------------------------------------------------

_MONITOR_UPSERT = """
    INSERT INTO variable_monitors (charge_point_id, monitor_id, component, component_instance,
                                   evse_id, variable, variable_instance, type, value, severity,
                                   transaction, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (charge_point_id, monitor_id) DO UPDATE SET
        component = EXCLUDED.component, component_instance = EXCLUDED.component_instance,
        evse_id = EXCLUDED.evse_id, variable = EXCLUDED.variable,
        variable_instance = EXCLUDED.variable_instance, type = EXCLUDED.type,
        value = EXCLUDED.value, severity = EXCLUDED.severity,
        transaction = EXCLUDED.transaction, updated_at = EXCLUDED.updated_at
"""


def _monitor_row(
    charge_point_id: str,
    component: dict[str, Any],
    variable: dict[str, Any],
    monitor: dict[str, Any],
    at: datetime,
) -> tuple[Any, ...]:
    name, instance, evse_id, _, var, var_instance = _component_key(component, variable)
    return (
        charge_point_id,
        int(monitor["id"]),
        name,
        instance,
        evse_id,
        var,
        var_instance,
        str(monitor["type"]),
        float(monitor["value"]),
        int(monitor["severity"]),
        bool(monitor.get("transaction", False)),
        at,
    )


async def record_monitoring_report(
    conn: Executor, charge_point_id: str, monitors: Iterable[dict[str, Any]], at: datetime
) -> None:
    """NotifyMonitoringReport: ``monitors`` are {component, variable, variable_monitoring}."""
    rows = [
        _monitor_row(charge_point_id, item["component"], item["variable"], monitoring, at)
        for item in monitors
        for monitoring in item.get("variable_monitoring") or ()
    ]
    if rows:
        await conn.executemany(_MONITOR_UPSERT, rows)


async def record_set_monitoring(
    conn: Executor,
    charge_point_id: str,
    requested: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any]],
    at: datetime,
) -> None:
    """SetVariableMonitoring: results come in request order; Accepted ones get their id."""
    rows = []
    for asked, result in zip(requested, results, strict=False):
        if result.get("status") != "Accepted" or result.get("id") is None:
            continue
        monitor = {**asked, "id": result["id"]}
        rows.append(
            _monitor_row(charge_point_id, asked["component"], asked["variable"], monitor, at)
        )
    if rows:
        await conn.executemany(_MONITOR_UPSERT, rows)


async def clear_monitors(conn: Executor, charge_point_id: str, monitor_ids: list[int]) -> None:
    await conn.execute(
        "DELETE FROM variable_monitors WHERE charge_point_id = $1 AND monitor_id = ANY($2)",
        charge_point_id,
        monitor_ids,
    )


async def monitors(conn: Executor, charge_point_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT monitor_id, component, component_instance, evse_id, variable, variable_instance,
               type, value, severity, transaction, updated_at, last_event_at, last_event_value
        FROM variable_monitors WHERE charge_point_id = $1 ORDER BY monitor_id
        """,
        charge_point_id,
    )
    return [dict(r) for r in rows]
