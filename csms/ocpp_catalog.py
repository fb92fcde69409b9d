"""Which OCPP actions each side may initiate, per version (1.6J with the security extension).

One place for the direction of every action the ``ocpp`` library defines, so
that the raw command endpoint refuses a charger-initiated action, the
handler tests can check every charger-initiated action has a handler, and
docs/ocpp-messages.md can be checked against the full list.
"""

from __future__ import annotations

from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from csms.events import Protocol

# Sent by the charger (the CSMS answers). DataTransfer goes both ways.
CHARGER_INITIATED: dict[Protocol, frozenset[str]] = {
    Protocol.V16: frozenset(
        {
            "Authorize",
            "BootNotification",
            "DataTransfer",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "Heartbeat",
            "MeterValues",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
            # OCPP 1.6 security whitepaper (edition 3) extension
            "LogStatusNotification",
            "SecurityEventNotification",
            "SignCertificate",
            "SignedFirmwareStatusNotification",
        }
    ),
    Protocol.V201: frozenset(
        {
            "Authorize",
            "BootNotification",
            "ClearedChargingLimit",
            "DataTransfer",
            "FirmwareStatusNotification",
            "Get15118EVCertificate",
            "GetCertificateStatus",
            "Heartbeat",
            "LogStatusNotification",
            "MeterValues",
            "NotifyChargingLimit",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "NotifyEVChargingNeeds",
            "NotifyEVChargingSchedule",
            "NotifyEvent",
            "NotifyMonitoringReport",
            "NotifyReport",
            "PublishFirmwareStatusNotification",
            "ReportChargingProfiles",
            "ReservationStatusUpdate",
            "SecurityEventNotification",
            "SignCertificate",
            "StatusNotification",
            "TransactionEvent",
        }
    ),
}

ALL_ACTIONS: dict[Protocol, frozenset[str]] = {
    Protocol.V16: frozenset(a.value for a in Action16),
    Protocol.V201: frozenset(a.value for a in Action201),
}

CSMS_INITIATED: dict[Protocol, frozenset[str]] = {
    protocol: (ALL_ACTIONS[protocol] - CHARGER_INITIATED[protocol]) | {"DataTransfer"}
    for protocol in Protocol
}
