"""Version-neutral operator commands: what an operator asks a charger to do.

Each model is the JSON body of ``POST /api/v1/chargers/{id}/commands/{name}``.
Numbering follows the event model: ``connector_id`` is the 1.6 connector,
which is the EVSE of a 2.0.1 charger; ``evse_connector_id`` picks one
connector of that EVSE where 2.0.1 allows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RemoteStart(Command):
    id_token: str = Field(min_length=1, max_length=36)
    connector_id: int | None = Field(default=None, ge=1, description="1.6 connector / 2.0.1 EVSE")
    id_token_type: str = Field(default="Central", description="2.0.1 IdTokenType")
    group_id_token: str | None = Field(
        default=None, max_length=36, description="2.0.1 groupIdToken (type Central)"
    )
    charging_profile: ChargingProfile | None = Field(
        default=None, description="a TxProfile for the session to start (purpose tx)"
    )


class RemoteStop(Command):
    transaction_id: str = Field(min_length=1, max_length=36)


class Reset(Command):
    type: Literal["soft", "hard"] = "soft"
    when: Literal["immediate", "on_idle"] = Field(
        default="immediate", description="2.0.1 only: Immediate or OnIdle"
    )
    evse_id: int | None = Field(
        default=None, ge=1, description="2.0.1 only: reset this EVSE, not the whole station"
    )


class UnlockConnector(Command):
    connector_id: int = Field(ge=1)
    evse_connector_id: int = Field(default=1, ge=1, description="2.0.1 connector on the EVSE")


class ChangeAvailability(Command):
    operative: bool
    connector_id: int = Field(default=0, ge=0, description="0: the whole charger")
    evse_connector_id: int | None = Field(
        default=None, ge=1, description="2.0.1 only: one connector of the EVSE (evse.connectorId)"
    )


class GetConfiguration(Command):
    keys: list[str] | None = None


class ChangeConfiguration(Command):
    key: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)


class VariableRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    component: str = Field(min_length=1)
    variable: str = Field(min_length=1)
    instance: str | None = None
    evse_id: int | None = None
    attribute_type: Literal["Actual", "Target", "MinSet", "MaxSet"] | None = None


class VariableValue(VariableRef):
    value: str = Field(max_length=1000)


class GetVariables(Command):
    variables: list[VariableRef] = Field(min_length=1)


class SetVariables(Command):
    variables: list[VariableValue] = Field(min_length=1)


class TriggerMessage(Command):
    """Every message either version can trigger.

    1.6 sends TriggerMessage, or the security extension's ExtendedTriggerMessage
    for LogStatusNotification and SignChargingStationCertificate (1.6 name:
    SignChargePointCertificate); 2.0.1 sends DiagnosticsStatusNotification as
    LogStatusNotification.
    """

    message: Literal[
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "FirmwareStatusNotification",
        "DiagnosticsStatusNotification",
        "LogStatusNotification",
        "TransactionEvent",
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "SignCombinedCertificate",
        "PublishFirmwareStatusNotification",
    ]
    connector_id: int | None = Field(default=None, ge=1)
    evse_connector_id: int | None = Field(
        default=None, ge=1, description="2.0.1 only: one connector of the EVSE (evse.connectorId)"
    )


class SchedulePeriod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_period: int = Field(ge=0, description="seconds from the schedule start")
    limit: float = Field(ge=0)
    number_phases: int | None = Field(default=None, ge=1, le=3)


class ChargingSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Literal["A", "W"]
    periods: list[SchedulePeriod] = Field(min_length=1)
    duration: int | None = Field(default=None, ge=0)
    start_schedule: datetime | None = None
    min_charging_rate: float | None = Field(default=None, ge=0)


class ChargingProfile(BaseModel):
    """A profile whose meaning the spec defines (see :func:`profile_ambiguity`)."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1)
    stack_level: int = Field(ge=0)
    purpose: Literal["charger_max", "tx_default", "tx"]
    kind: Literal["absolute", "recurring", "relative"] = "absolute"
    recurrency: Literal["daily", "weekly"] | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    schedule: ChargingSchedule

    @model_validator(mode="after")
    def _unambiguous(self) -> ChargingProfile:
        problem = profile_ambiguity(self)
        if problem is not None:
            raise ValueError(problem)
        return self


def profile_ambiguity(profile: ChargingProfile) -> str | None:
    """Why the charger could not know what ``profile`` means; None if it can.

    An absolute profile without ``start_schedule`` is completed with the moment it
    is sent (:mod:`csms.interop.profiles`) when that moment cannot change its
    meaning: one endless period, or a charger_max profile (it belongs to no
    transaction, so "from now" is the only reading). A timed schedule of a
    transaction's profile is refused instead: "from now" and "from the start of the
    transaction" (kind relative) would both be plausible, and differ.
    """
    schedule = profile.schedule
    if profile.recurrency is not None and profile.kind != "recurring":
        return "recurrency is only for kind 'recurring'"
    if profile.kind == "recurring":
        if profile.recurrency is None or schedule.start_schedule is None:
            return ("a recurring profile needs recurrency ('daily' or 'weekly') and "
                    "schedule.start_schedule (when its day or week begins)")  # fmt: skip
    elif profile.kind == "relative":
        if profile.purpose == "charger_max":
            return ("a charger_max profile belongs to no transaction, so it cannot be "
                    "relative: use kind 'absolute'")  # fmt: skip
        if schedule.start_schedule is not None:
            return ("a relative profile counts from the start of the transaction: leave "
                    "schedule.start_schedule out, or use kind 'absolute'")  # fmt: skip
    elif schedule.start_schedule is None and profile.purpose != "charger_max":
        if len(schedule.periods) > 1 or schedule.duration is not None:
            return ("an absolute profile with several periods or a duration needs "
                    "schedule.start_schedule; to count from the start of the transaction "
                    "use kind 'relative'")  # fmt: skip
    return None


class SetChargingProfile(Command):
    connector_id: int = Field(default=0, ge=0, description="0: the whole charger")
    profile: ChargingProfile


class ClearChargingProfile(Command):
    profile_id: int | None = None
    connector_id: int | None = Field(default=None, ge=0)
    purpose: Literal["charger_max", "tx_default", "tx"] | None = None
    stack_level: int | None = Field(default=None, ge=0)


class GetCompositeSchedule(Command):
    connector_id: int = Field(ge=0)
    duration: int = Field(gt=0, description="seconds")
    unit: Literal["A", "W"] | None = None


class DataTransfer(Command):
    vendor_id: str = Field(min_length=1, max_length=255)
    message_id: str | None = Field(default=None, max_length=50)
    data: Any = None


class UpdateFirmware(Command):
    location: str = Field(min_length=1, max_length=512)
    retrieve_at: datetime
    retries: int | None = Field(default=None, ge=0)
    retry_interval: int | None = Field(default=None, ge=0)
    install_at: datetime | None = Field(default=None, description="when to install it")
    signing_certificate: str | None = Field(
        default=None, max_length=5500, description="PEM of the firmware signer's certificate"
    )
    signature: str | None = Field(
        default=None, max_length=800, description="base64 signature of the firmware image"
    )


class GetDiagnostics(Command):
    """1.6 GetDiagnostics; a 2.0.1 charger gets GetLog with logType DiagnosticsLog."""

    location: str = Field(min_length=1, max_length=512)
    start_time: datetime | None = None
    stop_time: datetime | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_interval: int | None = Field(default=None, ge=0)
    log_type: Literal["DiagnosticsLog", "SecurityLog"] = "DiagnosticsLog"


class ReserveNow(Command):
    id_token: str = Field(min_length=1, max_length=36)
    expires_at: datetime
    connector_id: int | None = Field(default=None, ge=0, description="1.6: 0 = any connector")
    reservation_id: int | None = Field(default=None, ge=0, description="default: CSMS picks")
    id_token_type: str = "Central"
    connector_type: str | None = Field(
        default=None, max_length=20, description="2.0.1 only: ConnectorEnumType, e.g. cType2"
    )
    group_id_token: str | None = Field(
        default=None, max_length=36, description="1.6 parentIdTag, 2.0.1 groupIdToken"
    )


class CancelReservation(Command):
    reservation_id: int = Field(ge=0)


class LocalListEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id_token: str = Field(min_length=1, max_length=36)
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] | None = Field(
        default="Accepted", description="null removes the token in a differential update"
    )
    expires_at: datetime | None = None
    group_id: str | None = None
    id_token_type: str = "ISO14443"


class SendLocalList(Command):
    version: int = Field(ge=1)
    update_type: Literal["full", "differential"] = "full"
    tokens: list[LocalListEntry] = Field(default_factory=list)


class NoArguments(Command):
    """Commands that take no arguments (clear cache, get local list version)."""


RemoteStart.model_rebuild()  # its charging_profile refers to a model defined below it
