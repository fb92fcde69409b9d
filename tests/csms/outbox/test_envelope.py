"""Envelopes, topics and schemas: pure functions, no broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from billing import events as _billing_events  # noqa: F401  (cdr_created, discovered below)
from csms import events
from csms.config import Settings
from csms.monitoring import alerts as _alerts  # noqa: F401  (alert event types, discovered below)
from csms.outbox import schemas
from csms.outbox.consume import Deduper, Station, apply_status, render_table
from csms.outbox.envelope import (
    SCHEMA_VERSIONS,
    OutboxRow,
    kafka_key,
    messages_for,
    session_summary,
)
from csms.outbox.topics import TOPIC_OF_TYPE, Topic, topic_names
from smart_charging import events as _sc_events  # noqa: F401  (load-management types)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _event_types() -> set[str]:
    found, todo = set(), [events.Event]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not events.Event:
            found.add(cls.type)
    return found


def test_every_event_type_has_a_topic_a_version_and_a_schema() -> None:
    types = _event_types()
    assert len(types) >= 15
    assert types <= set(TOPIC_OF_TYPE), types - set(TOPIC_OF_TYPE)
    assert types <= set(SCHEMA_VERSIONS)
    shipped = set(schemas.schema_ids())
    assert {f"{t}.v{SCHEMA_VERSIONS[t]}.json" for t in types} <= shipped


def _row(kind: str, payload: dict[str, Any], context: dict[str, Any] | None = None) -> OutboxRow:
    return OutboxRow(
        7,
        uuid.uuid4(),
        kind,
        "CP-9",
        1,
        1,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, seconds=2),
        payload,
        context,
    )


SESSION_ROW = {
    "transaction_id": "42",
    "status": "ended",
    "protocol": "ocpp1.6",
    "evse_id": 1,
    "connector_id": 1,
    "id_token": "TAG",
    "token_type": None,
    "auth_status": "Accepted",
    "started_at": "2026-03-01T08:15:00+00:00",
    "ended_at": "2026-03-01T09:00:00+00:00",
    "meter_start_wh": 1000.0,
    "meter_stop_wh": 23500.0,
    "meter_last_wh": 23000.0,
    "energy_wh": 22500.0,
    "stop_reason": "EVDisconnected",
    "start_unknown": False,
}


def test_session_end_carries_billable_totals_and_copies_samples_to_meter_values() -> None:
    sample = {
        "sampled_at": "2026-03-01T09:00:00+00:00",
        "measurand": "Energy.Active.Import.Register",
        "value": 23500.0,
        "unit": "Wh",
        "phase": None,
        "context": None,
        "location": None,
    }
    payload = {
        "transaction_id": "42",
        "evse_id": 1,
        "connector_id": 1,
        "id_token": "TAG",
        "token_type": None,
        "meter_stop_wh": 23500.0,
        "stop_reason": "EVDisconnected",
        "trigger_reason": None,
        "seq_no": None,
        "offline": False,
        "samples": [sample],
    }
    row = _row("session_ended", payload, SESSION_ROW)
    session, meter = messages_for(row)
    assert (session.topic, meter.topic) == (Topic.CHARGING_SESSIONS, Topic.METER_VALUES)
    assert session.key == meter.key == b"CP-9"
    summary = session.envelope["payload"]["session"]
    assert summary["duration_s"] == 2700 and summary["energy_kwh"] == 22.5
    assert summary["stop_reason"] == "EVDisconnected"
    assert session.envelope["event_id"] == str(row.event_id)
    assert session.envelope["occurred_at"] == "2026-03-01T09:00:00+00:00"
    assert session.envelope["recorded_at"] == "2026-03-01T09:00:02+00:00"
    assert meter.envelope["payload"]["source_event_id"] == str(row.event_id)
    assert meter.envelope["event_id"] == messages_for(row)[1].envelope["event_id"]  # stable
    assert meter.envelope["event_id"] != session.envelope["event_id"]
    for message in (session, meter):
        schemas.validate(message.envelope)
        assert message.value.startswith(b'{"event_id":')


def test_active_session_duration_runs_to_the_event() -> None:
    active = {**SESSION_ROW, "status": "active", "ended_at": None, "energy_wh": None}
    summary = session_summary(active, T0 + timedelta(hours=1))
    assert summary is not None
    assert summary["duration_s"] == 2700 and summary["energy_kwh"] is None
    assert session_summary(None, T0) is None


def test_a_wrong_payload_fails_its_schema() -> None:
    [message] = messages_for(
        _row("connector_status_changed", {"evse_id": 1, "connector_id": 1, "status": "Charging"})
    )
    with pytest.raises(jsonschema.ValidationError):
        schemas.validate(message.envelope)


def test_kafka_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "CSMS_KAFKA_TOPIC_STATION_STATUS": "prod.station-status",
            "CSMS_OUTBOX_RETENTION_HOURS": "12",
            "CSMS_OUTBOX_BATCH_SIZE": "100",
        }
    )
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert topic_names(settings)[Topic.STATION_STATUS] == "prod.station-status"
    assert (settings.outbox_retention_hours, settings.outbox_batch_size) == (12.0, 100)
    assert Settings.from_env({}).kafka_bootstrap_servers is None
    with pytest.raises(ValueError):
        Settings.from_env({"CSMS_OUTBOX_RETENTION_HOURS": "0"})


def test_availability_table_and_dedupe() -> None:
    dedupe, stations = Deduper(size=2), dict[str, Station]()
    assert [dedupe.seen(x) for x in ("a", "b", "a", "c", "a")] == [False, False, True, False, False]
    base = {"occurred_at": "t1", "evse_id": None, "connector_id": None}
    apply_status(
        stations,
        {
            **base,
            "type": "charger_connected",
            "charge_point_id": "B",
            "payload": {"protocol": "ocpp1.6"},
        },
    )
    apply_status(
        stations,
        {
            **base,
            "type": "connector_status_changed",
            "charge_point_id": "B",
            "payload": {"evse_id": 1, "connector_id": 1, "status": "Faulted"},
        },
    )
    apply_status(
        stations, {**base, "type": "charger_disconnected", "charge_point_id": "A", "payload": {}}
    )
    lines = render_table(stations).splitlines()
    assert lines[1].split() == ["A", "no", "-", "t1"]
    assert lines[2].split() == ["B", "yes", "1/1:", "Faulted", "t1"]


def test_station_status_keys_keep_every_connector_under_compaction() -> None:
    """Compaction keeps one record per key: each connector's state needs its own key."""
    keys = {
        kafka_key("connector_status_changed", "CP", 1, 1, {}),
        kafka_key("connector_status_changed", "CP", 1, 2, {}),
        kafka_key("connector_status_changed", "CP", 2, 1, {}),
        kafka_key("charger_connected", "CP", None, None, {}),
        kafka_key("reservation_status_changed", "CP", None, None, {"reservation_id": 7}),
    }
    assert keys == {b"CP/1/1", b"CP/1/2", b"CP/2/1", b"CP", b"CP/reservation/7"}
    assert kafka_key("session_started", "CP", 1, 1, {}) == b"CP"  # others: per charger
