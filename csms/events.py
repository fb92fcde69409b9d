"""The one internal event model shared by OCPP 1.6 and 2.0.1.

Handlers translate each charger message into one of these events; storage,
fan-out, smart charging and billing see only events, never OCPP payloads.
Every event names its charger and when it happened *at the charger*
(``occurred_at``, from the message's own timestamp where it has one, so that
messages a charger queued while offline keep their real time).

Numbering: an ``evse_id`` is the unit that charges one vehicle at a time. A
1.6 ``connectorId`` is such a unit, so 1.6 events carry it as both
``evse_id`` and ``connector_id``; 2.0.1 events carry the EVSE and connector
the charger names. ``0`` means the charger as a whole.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import orjson

from csms.dedupe import next_event_id


class Protocol(enum.StrEnum):
    """OCPP-J versions, spelled as their WebSocket subprotocols."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


class ConnectorStatus(enum.StrEnum):
    """Availability of a connector, in 2.0.1's five values (1.6 maps onto them)."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class AuthorizationStatus(enum.StrEnum):
    """The answer to an id token; the values both versions share."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class RegistrationStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One sampled value, normalised: energy in Wh, power in W, current in A, voltage in V."""

    sampled_at: datetime
    measurand: str
    value: float
    unit: str | None
    phase: str | None = None
    context: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event has. ``event_id`` is unique and lets consumers deduplicate."""

    type: ClassVar[str] = "event"

    charge_point_id: str
    occurred_at: datetime
    # Derived from the charger's message when created while handling one, so that a
    # resent message makes the same ids (csms.dedupe); random otherwise.
    event_id: uuid.UUID = field(default_factory=next_event_id)

    @property
    def evse(self) -> tuple[int | None, int | None]:
        """(evse_id, connector_id) this event is about, where it is about one."""
        return (getattr(self, "evse_id", None), getattr(self, "connector_id", None))

    def payload(self) -> dict[str, Any]:
        """The event's own fields as JSON-ready values (envelope fields left out)."""
        return {
            name: _jsonable(getattr(self, name))
            for name in _field_names(type(self))
            if name not in _ENVELOPE
        }

    def payload_json(self) -> str:
        """:meth:`payload` as compact JSON text: what the events table stores.

        Every stored event passes here (8 samples each for a meter value), so the
        fields go to orjson as they are (it writes dataclasses, datetimes as
        ``isoformat``, enums and UUIDs itself; 4x faster than building
        :meth:`payload` for ``json.dumps``); a value it cannot write (an integer
        beyond 64 bits, a dict with non-string keys) takes the old road.
        """
        fields = {name: getattr(self, name) for name in _payload_names(type(self))}
        try:
            return orjson.dumps(fields).decode()
        except TypeError:  # orjson.JSONEncodeError included
            return json.dumps(self.payload(), separators=(",", ":"))


_ENVELOPE = frozenset({"charge_point_id", "occurred_at", "event_id"})
_PLAIN = (str, int, float, bool, type(None))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order (``dataclasses.fields`` is slow per message)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_PAYLOAD_NAMES: dict[type, tuple[str, ...]] = {}


def _payload_names(cls: type) -> tuple[str, ...]:
    """An event class's own field names (the envelope left out), in order."""
    names = _PAYLOAD_NAMES.get(cls)
    if names is None:
        names = _PAYLOAD_NAMES[cls] = tuple(
            name for name in _field_names(cls) if name not in _ENVELOPE
        )
    return names


def _jsonable(value: Any) -> Any:
    # Every event of every message passes here (its payload is stored): plain values
    # and the samples of a meter value first, by exact type.
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is tuple or kind is list:
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerConnected(Event):
    type: ClassVar[str] = "charger_connected"
    protocol: Protocol
    remote_address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerDisconnected(Event):
    type: ClassVar[str] = "charger_disconnected"
    close_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerBooted(Event):
    type: ClassVar[str] = "charger_booted"
    protocol: Protocol
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    reason: str | None = None  # 2.0.1 BootReason; 1.6 has none
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorStatusChanged(Event):
    type: ClassVar[str] = "connector_status_changed"
    evse_id: int
    connector_id: int
    status: ConnectorStatus
    detail: str | None = None  # the 1.6 status (Preparing, Charging, ...) that maps to status
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSampled(Event):
    """Samples outside a transaction message (1.6 MeterValues, 2.0.1 MeterValues)."""

    type: ClassVar[str] = "meter_sampled"
    evse_id: int
    connector_id: int | None
    transaction_id: str | None
    samples: tuple[MeterSample, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequested(Event):
    type: ClassVar[str] = "authorization_requested"
    id_token: str
    token_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Event):
    """A transaction began. ``transaction_id`` is None for 1.6: the CSMS assigns it."""

    type: ClassVar[str] = "session_started"
    evse_id: int | None
    connector_id: int | None
    transaction_id: str | None
    id_token: str | None
    token_type: str | None = None
    meter_start_wh: float | None = None
    reservation_id: int | None = None
    trigger_reason: str | None = None
    seq_no: int | None = None
    offline: bool = False
    samples: tuple[MeterSample, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdated(Event):
    type: ClassVar[str] = "session_updated"
    transaction_id: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    token_type: str | None = None
    trigger_reason: str | None = None
    charging_state: str | None = None
    seq_no: int | None = None
    offline: bool = False
    samples: tuple[MeterSample, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(Event):
    type: ClassVar[str] = "session_ended"
    transaction_id: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    token_type: str | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    trigger_reason: str | None = None
    seq_no: int | None = None
    offline: bool = False
    samples: tuple[MeterSample, ...] = ()
    # What the charger sent that could not be stored (a NaN sample, a year-9999 stop
    # time...): left out and named here, since an end is always stored (15.2).
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareStatusChanged(Event):
    type: ClassVar[str] = "firmware_status_changed"
    status: str
    request_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadStatusChanged(Event):
    """1.6 DiagnosticsStatusNotification and 2.0.1 LogStatusNotification."""

    type: ClassVar[str] = "upload_status_changed"
    kind: str  # "diagnostics" (1.6) or "log" (2.0.1)
    status: str
    request_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityEventReported(Event):
    type: ClassVar[str] = "security_event_reported"
    event_type: str
    tech_info: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerEventsNotified(Event):
    """2.0.1 NotifyEvent: component/variable events (alerts, faults, threshold crossings)."""

    type: ClassVar[str] = "charger_events_notified"
    seq_no: int
    tbc: bool
    event_data: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportReceived(Event):
    """2.0.1 NotifyReport: one part of a device-model report."""

    type: ClassVar[str] = "report_received"
    request_id: int
    seq_no: int
    tbc: bool
    report_data: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationStatusChanged(Event):
    """2.0.1 ReservationStatusUpdate: a reservation expired or was removed at the charger."""

    type: ClassVar[str] = "reservation_status_changed"
    reservation_id: int
    status: str  # Expired or Removed


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTransferReceived(Event):
    type: ClassVar[str] = "data_transfer_received"
    vendor_id: str
    message_id: str | None = None
    data: Any = None


SESSION_EVENTS = (SessionStarted, SessionUpdated, SessionEnded)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerReportReceived(Event):
    """One part of a report a charger sends on request or on its own (2.0.1).

    NotifyMonitoringReport, NotifyDisplayMessages, NotifyCustomerInformation,
    ReportChargingProfiles, NotifyEVChargingSchedule and
    PublishFirmwareStatusNotification: stored as reported in ``charger_reports``
    (:mod:`csms.storage.charger_reports`); ``data`` is the message without the
    envelope fields named here.
    """

    type: ClassVar[str] = "charger_report_received"
    action: str
    request_id: int | None = None
    seq_no: int | None = None
    tbc: bool = False
    evse_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvChargingNeedsReported(Event):
    """2.0.1 NotifyEVChargingNeeds (ISO 15118): what the EV wants, and by when."""

    type: ClassVar[str] = "ev_charging_needs_reported"
    evse_id: int
    requested_energy_transfer: str
    departure_time: datetime | None = None
    energy_amount_wh: float | None = None
    max_schedule_tuples: int | None = None
    needs: dict[str, Any] = field(default_factory=dict)  # the whole chargingNeeds


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalLimitChanged(Event):
    """2.0.1 NotifyChargingLimit / ClearedChargingLimit: a limit set outside the CSMS."""

    type: ClassVar[str] = "external_limit_changed"
    source: str  # EMS, Other, SO (system operator), CSO
    evse_id: int | None = None
    cleared: bool = False
    grid_critical: bool | None = None
    schedules: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateSigningRequested(Event):
    """SignCertificate (2.0.1, and 1.6 security extension): a charger asks for a certificate."""

    type: ClassVar[str] = "certificate_signing_requested"
    certificate_type: str  # ChargingStationCertificate or V2GCertificate
    csr: str
    accepted: bool
    reason: str | None = None  # why the CSMS refused, when it did
    certificate_pem: str | None = None  # what the CSMS's CA issued, when it accepted
    serial_number: str | None = None
