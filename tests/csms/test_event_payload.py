"""What the events table stores of an event: ``payload_json`` says what ``payload`` says."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from csms.events import (
    ChargerBooted,
    ChargerEventsNotified,
    ConnectorStatus,
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    Protocol,
    SessionUpdated,
)

AT = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
SAMPLES = (
    MeterSample(AT, "Energy.Active.Import.Register", 1234.5, "Wh"),
    MeterSample(
        AT.astimezone(timezone(timedelta(hours=2))),  # the charger's own offset, kept
        "Current.Import",
        16.0,
        "A",
        phase="L1",
        context="Sample.Periodic",
        location="Outlet",
    ),
    MeterSample(datetime(2026, 1, 1), "Voltage", 1e16, "V"),  # no offset at all
)


def test_the_frequent_events_store_the_same_json_as_their_payload() -> None:
    events = [
        MeterSampled(
            charge_point_id="CP", occurred_at=AT, evse_id=1, connector_id=1,
            transaction_id="7", samples=SAMPLES,
        ),
        SessionUpdated(
            charge_point_id="CP", occurred_at=AT, transaction_id="T-1", evse_id=1,
            trigger_reason="MeterValuePeriodic", charging_state="Charging", seq_no=3,
            samples=SAMPLES,
        ),
        ConnectorStatusChanged(
            charge_point_id="CP", occurred_at=AT, evse_id=1, connector_id=2,
            status=ConnectorStatus.OCCUPIED, detail="Charging", info="é ünïcode",
        ),
        ChargerBooted(
            charge_point_id="CP", occurred_at=AT, protocol=Protocol.V201, vendor="V",
            model="M",
        ),
    ]  # fmt: skip
    for event in events:
        assert json.loads(event.payload_json()) == event.payload()
        assert "charge_point_id" not in event.payload_json()  # the envelope has columns


def test_a_value_orjson_cannot_write_takes_the_old_road() -> None:
    event = ChargerEventsNotified(
        charge_point_id="CP",
        occurred_at=AT,
        event_id=uuid.uuid4(),
        seq_no=0,
        tbc=False,
        event_data=({"eventId": 2**70, "notes": {1: "int key"}},),
    )
    assert json.loads(event.payload_json()) == event.payload()
