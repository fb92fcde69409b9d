"""Which topic each event goes to, and how each topic is created.

One table (:data:`TOPIC_OF_TYPE`) maps every internal event type to one of
the logical topics; the Kafka topic names come from settings so that an
operator can prefix or rename them. Every message is keyed by the charger id,
so one charger's events of one topic stay in order on one partition -- except
on the compacted ``station-status``, keyed per connector, connection and
reservation so that compaction keeps each one's last state
(:func:`csms.outbox.envelope.kafka_key`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from csms.config import Settings


class Topic(enum.StrEnum):
    """Logical topics; the values are the default Kafka topic names."""

    STATION_STATUS = "station-status"
    CHARGING_SESSIONS = "charging-sessions"
    METER_VALUES = "meter-values"
    CHARGER_EVENTS = "charger-events"
    LOAD_MANAGEMENT = "load-management"  # smart-charging decisions
    CHARGER_ALERTS = "charger-alerts"  # fault detection: alerts opened and resolved


TOPIC_OF_TYPE: dict[str, Topic] = {
    # availability: what a map or app shows
    "charger_connected": Topic.STATION_STATUS,
    "charger_disconnected": Topic.STATION_STATUS,
    "connector_status_changed": Topic.STATION_STATUS,
    "reservation_status_changed": Topic.STATION_STATUS,
    # what billing prices
    "session_started": Topic.CHARGING_SESSIONS,
    "session_updated": Topic.CHARGING_SESSIONS,
    "session_ended": Topic.CHARGING_SESSIONS,
    # typed samples (session events' samples are also copied here, see envelope)
    "meter_sampled": Topic.METER_VALUES,
    # everything operations looks at
    "charger_booted": Topic.CHARGER_EVENTS,
    "firmware_status_changed": Topic.CHARGER_EVENTS,
    "upload_status_changed": Topic.CHARGER_EVENTS,
    "security_event_reported": Topic.CHARGER_EVENTS,
    "charger_events_notified": Topic.CHARGER_EVENTS,
    "report_received": Topic.CHARGER_EVENTS,
    "charger_report_received": Topic.CHARGER_EVENTS,
    "certificate_signing_requested": Topic.CHARGER_EVENTS,
    "data_transfer_received": Topic.CHARGER_EVENTS,
    "authorization_requested": Topic.CHARGER_EVENTS,
    # smart charging (smart_charging/): profiles sent and site plans
    "charging_limit_set": Topic.LOAD_MANAGEMENT,
    "ev_charging_needs_reported": Topic.LOAD_MANAGEMENT,  # ISO 15118 needs (planner input)
    "external_limit_changed": Topic.LOAD_MANAGEMENT,  # limits set outside the CSMS
    "load_plan_computed": Topic.LOAD_MANAGEMENT,
    # billing (billing/): a finished session's CDR, right after its session_ended
    "cdr_created": Topic.CHARGING_SESSIONS,
    # fault detection (csms.monitoring.alerts)
    "alert_opened": Topic.CHARGER_ALERTS,
    "alert_resolved": Topic.CHARGER_ALERTS,
}

FALLBACK_TOPIC = Topic.CHARGER_EVENTS
"""Where an event type missing from the table goes: a new event type must never
stop the relay (a test checks that the table covers every type)."""


def topic_of(event_type: str) -> Topic:
    return TOPIC_OF_TYPE.get(event_type, FALLBACK_TOPIC)


def topic_names(settings: Settings) -> dict[Topic, str]:
    """The Kafka topic name of each logical topic (``CSMS_KAFKA_TOPIC_*``)."""
    return {
        Topic.STATION_STATUS: settings.kafka_topic_station_status,
        Topic.CHARGING_SESSIONS: settings.kafka_topic_charging_sessions,
        Topic.METER_VALUES: settings.kafka_topic_meter_values,
        Topic.CHARGER_EVENTS: settings.kafka_topic_charger_events,
        Topic.LOAD_MANAGEMENT: settings.kafka_topic_load_management,
        Topic.CHARGER_ALERTS: settings.kafka_topic_charger_alerts,
    }


_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How ``csms kafka-init`` creates a topic: its Kafka configs."""

    retention_ms: int
    cleanup_policy: str

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


TOPIC_SPECS: dict[Topic, TopicSpec] = {
    # Latest status per charger is what matters: compacted, and old records
    # deleted after a day (a consumer starting later reads the current state).
    Topic.STATION_STATUS: TopicSpec(retention_ms=_DAY_MS, cleanup_policy="compact,delete"),
    # Billing input: kept long enough to re-price a year of sessions.
    Topic.CHARGING_SESSIONS: TopicSpec(retention_ms=400 * _DAY_MS, cleanup_policy="delete"),
    Topic.METER_VALUES: TopicSpec(retention_ms=7 * _DAY_MS, cleanup_policy="delete"),
    Topic.CHARGER_EVENTS: TopicSpec(retention_ms=30 * _DAY_MS, cleanup_policy="delete"),
    Topic.LOAD_MANAGEMENT: TopicSpec(retention_ms=30 * _DAY_MS, cleanup_policy="delete"),
    Topic.CHARGER_ALERTS: TopicSpec(retention_ms=90 * _DAY_MS, cleanup_policy="delete"),
}
