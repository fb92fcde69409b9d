"""Build the Kafka messages for one outbox row: pure functions, no I/O.

Every message, on every topic, is one JSON envelope (schema in
``schemas/envelope.v1.json``)::

    {"event_id": "<uuid>", "type": "connector_status_changed", "schema_version": 1,
     "occurred_at": "<charger's time>", "recorded_at": "<CSMS's time>",
     "charge_point_id": "CP-1", "evse_id": 1, "connector_id": 1, "payload": {...}}

``schema_version`` is per event type: adding an optional payload field keeps
the version, anything a consumer could trip over (a removed or renamed field,
a changed meaning) bumps it. Session events carry ``payload.session``, the
session row as the state change left it (start/end, duration, energy), so a
billing consumer needs nothing else. Their meter samples are also published to
the meter-values topic as a ``meter_sampled`` message whose ``event_id`` is
derived from the session event's (uuid5), so a re-send dedupes too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.outbox.topics import Topic, topic_of

SCHEMA_VERSIONS: dict[str, int] = {
    "charger_connected": 1,
    "charger_disconnected": 1,
    "connector_status_changed": 1,
    "session_started": 1,
    "session_updated": 1,
    "session_ended": 1,
    "meter_sampled": 1,
    "charger_booted": 1,
    "firmware_status_changed": 1,
    "upload_status_changed": 1,
    "security_event_reported": 1,
    "charger_events_notified": 1,
    "report_received": 1,
    "charger_report_received": 1,
    "ev_charging_needs_reported": 1,
    "external_limit_changed": 1,
    "certificate_signing_requested": 1,
    "data_transfer_received": 1,
    "authorization_requested": 1,
    "charging_limit_set": 1,
    "load_plan_computed": 1,
    "reservation_status_changed": 1,
    "cdr_created": 1,
    "alert_opened": 1,
    "alert_resolved": 1,
}
SESSION_TYPES = frozenset({"session_started", "session_updated", "session_ended"})
_DERIVED_METER_NAMESPACE = uuid.UUID("6f1c1f0e-3b53-4a8e-9d55-4c1b0f2b7a01")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One row of ``events`` as the relay reads it."""

    id: int
    event_id: uuid.UUID
    type: str
    charge_point_id: str
    evse_id: int | None
    connector_id: int | None
    occurred_at: datetime
    recorded_at: datetime
    payload: Mapping[str, Any]
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record: logical topic, key (:func:`kafka_key`) and envelope."""

    topic: Topic
    key: bytes
    envelope: dict[str, Any]

    @property
    def value(self) -> bytes:
        return json.dumps(self.envelope, separators=(",", ":")).encode()


def kafka_key(
    event_type: str,
    charge_point_id: str,
    evse_id: int | None,
    connector_id: int | None,
    payload: Mapping[str, Any],
) -> bytes:
    """The record key: the charger id, except on ``station-status``.

    ``station-status`` is a compacted topic: compaction keeps the last record of
    each key, so each piece of state has its own key -- the charger's connection
    (``CP``), each connector (``CP/evse/connector``) and each reservation
    (``CP/reservation/id``). Keyed by charger alone, compaction kept only the
    charger's very last status and forgot every other connector's. Order holds per
    key; a consumer that needs one charger's events in one order reads
    ``charger-events`` or the envelope's ``recorded_at``.
    """
    if topic_of(event_type) is Topic.STATION_STATUS:
        if event_type == "reservation_status_changed":
            return f"{charge_point_id}/reservation/{payload.get('reservation_id')}".encode()
        if evse_id is not None:
            return f"{charge_point_id}/{evse_id}/{connector_id or 0}".encode()
    return charge_point_id.encode()


def messages_for(row: OutboxRow) -> list[Message]:
    """The messages one event becomes: one on its topic, plus meter samples if it has them."""
    charger_key = row.charge_point_id.encode()
    key = kafka_key(row.type, row.charge_point_id, row.evse_id, row.connector_id, row.payload)
    payload = dict(row.payload)
    if row.type in SESSION_TYPES:
        payload["session"] = session_summary(row.context, row.occurred_at)
    messages = [Message(topic_of(row.type), key, _envelope(row, row.type, row.event_id, payload))]
    if row.type in SESSION_TYPES and payload.get("samples"):
        meter_payload = {
            "evse_id": payload.get("evse_id"),
            "connector_id": payload.get("connector_id"),
            "transaction_id": payload.get("transaction_id"),
            "samples": payload["samples"],
            "source_event_id": str(row.event_id),
        }
        derived_id = uuid.uuid5(_DERIVED_METER_NAMESPACE, str(row.event_id))
        envelope = _envelope(row, "meter_sampled", derived_id, meter_payload)
        messages.append(Message(Topic.METER_VALUES, charger_key, envelope))
    return messages


def _envelope(
    row: OutboxRow, event_type: str, event_id: uuid.UUID, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": str(event_id),
        "type": event_type,
        "schema_version": SCHEMA_VERSIONS.get(event_type, 1),
        "occurred_at": row.occurred_at.isoformat(),
        "recorded_at": row.recorded_at.isoformat(),
        "charge_point_id": row.charge_point_id,
        "evse_id": row.evse_id,
        "connector_id": row.connector_id,
        "payload": payload,
    }


def session_summary(
    context: Mapping[str, Any] | None, occurred_at: datetime
) -> dict[str, Any] | None:
    """The session fields billing needs, from the session row snapshot (``events.context``).

    ``duration_s`` runs from the start to the end, or to this event while the
    session is active; ``energy_kwh`` is the meter register difference
    (stop or latest reading minus start reading), ``None`` until both exist.
    """
    if not context:
        return None
    started_at = _time(context.get("started_at"))
    ended_at = _time(context.get("ended_at"))
    duration_s: float | None = None
    if started_at is not None:
        duration_s = max(0.0, ((ended_at or occurred_at) - started_at).total_seconds())
    energy_wh = context.get("energy_wh")
    return {
        "transaction_id": context.get("transaction_id"),
        "status": context.get("status"),
        "protocol": context.get("protocol"),
        "evse_id": context.get("evse_id"),
        "connector_id": context.get("connector_id"),
        "id_token": context.get("id_token"),
        "token_type": context.get("token_type"),
        "auth_status": context.get("auth_status"),
        "started_at": started_at.isoformat() if started_at else None,
        "ended_at": ended_at.isoformat() if ended_at else None,
        "duration_s": duration_s,
        "meter_start_wh": context.get("meter_start_wh"),
        "meter_stop_wh": context.get("meter_stop_wh"),
        "energy_wh": energy_wh,
        "energy_kwh": None if energy_wh is None else energy_wh / 1000.0,
        "stop_reason": context.get("stop_reason"),
        "start_unknown": bool(context.get("start_unknown", False)),
    }


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
