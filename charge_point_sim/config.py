"""The charger's configuration key store (1.6 GetConfiguration / 2.0.1 GetVariables).

One store serves both protocol versions: keys are kept under their OCPP 1.6
names, and :data:`V201_VARIABLES` maps 2.0.1 component/variable pairs onto
them. The charger reads its behaviour (heartbeat interval, meter sample
interval, remote-start authorisation) from here, so a ChangeConfiguration /
SetVariables from the CSMS really changes what the simulator does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConfigKey:
    """One key: its value (always a string on the wire), type and mutability."""

    value: str
    readonly: bool = False
    kind: str = "str"  # "int" | "bool" | "str"


V201_VARIABLES: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "HeartbeatInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "MeterValuesSampledData",
    ("AlignedDataCtrlr", "Interval"): "ClockAlignedDataInterval",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "LocalPreAuthorize"): "LocalPreAuthorize",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "AllowOfflineTxForUnknownId",
    ("AuthCacheCtrlr", "Enabled"): "AuthorizationCacheEnabled",
    ("LocalAuthListCtrlr", "Enabled"): "LocalAuthListEnabled",
    ("LocalAuthListCtrlr", "Entries"): "LocalAuthListMaxLength",
    ("SmartChargingCtrlr", "ProfileStackLevel"): "ChargeProfileMaxStackLevel",
    ("SmartChargingCtrlr", "PeriodsPerSchedule"): "ChargingScheduleMaxPeriods",
    ("SmartChargingCtrlr", "Entries"): "MaxChargingProfilesInstalled",
    ("SmartChargingCtrlr", "RateUnit"): "ChargingScheduleAllowedChargingRateUnit",
    ("TxCtrlr", "EVConnectionTimeOut"): "ConnectionTimeOut",
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): "StopTransactionOnEVSideDisconnect",
    ("ChargingStation", "AvailabilityState"): "AvailabilityState",
    ("OCPPCommCtrlr", "WebSocketPingInterval"): "WebSocketPingInterval",
    ("OCPPCommCtrlr", "ResetRetries"): "ResetRetries",
    ("DeviceDataCtrlr", "ItemsPerMessage"): "GetConfigurationMaxKeys",
    # Only a station with a cost display has these (ChargerConfig.cost_updates).
    ("TariffCostCtrlr", "Available"): "TariffCostAvailable",
    ("TariffCostCtrlr", "Enabled"): "TariffCostEnabled",
}
RATE_UNIT_KEY = "ChargingScheduleAllowedChargingRateUnit"
_V16_UNIT = {"A": "Current", "W": "Power"}


def v16_rate_units(units: str) -> str:
    """``"A,W"`` -> ``"Current,Power"`` (1.6 spelling, as the key store keeps it)."""
    words = [_V16_UNIT.get(u.strip(), u.strip()) for u in units.split(",") if u.strip()]
    if not words or any(w not in _V16_UNIT.values() for w in words):
        raise ValueError(f"rate units are A, W or A,W; got {units!r}")
    return ",".join(words)


def rate_units_of(value: str) -> frozenset[str]:
    """``"Current,Power"`` -> {"A", "W"}: the units a schedule may use."""
    back = {v: k for k, v in _V16_UNIT.items()}
    return frozenset(back.get(w.strip(), w.strip()) for w in value.split(",") if w.strip())


def v201_value(key: str, value: str) -> str:
    """A key's value as 2.0.1 spells it (RateUnit is a member list of A and W)."""
    return ",".join(sorted(rate_units_of(value))) if key == RATE_UNIT_KEY else value


def default_keys(connectors: int, heartbeat: int, sample_interval: int) -> dict[str, ConfigKey]:
    """The keys a typical Core+SmartCharging+Reservation charger reports."""
    return {
        "HeartbeatInterval": ConfigKey(str(heartbeat), kind="int"),
        "MeterValueSampleInterval": ConfigKey(str(sample_interval), kind="int"),
        "MeterValuesSampledData": ConfigKey(
            "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC,"
            "Temperature"
        ),
        "ClockAlignedDataInterval": ConfigKey("0", kind="int"),
        "NumberOfConnectors": ConfigKey(str(connectors), readonly=True, kind="int"),
        "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
        "LocalPreAuthorize": ConfigKey("false", kind="bool"),
        "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
        "AllowOfflineTxForUnknownId": ConfigKey("true", kind="bool"),
        "AuthorizationCacheEnabled": ConfigKey("true", kind="bool"),
        "LocalAuthListEnabled": ConfigKey("true", kind="bool"),
        "LocalAuthListMaxLength": ConfigKey("1000", readonly=True, kind="int"),
        "SendLocalListMaxLength": ConfigKey("100", readonly=True, kind="int"),
        "ConnectionTimeOut": ConfigKey("60", kind="int"),
        "StopTransactionOnEVSideDisconnect": ConfigKey("true", kind="bool"),
        "WebSocketPingInterval": ConfigKey("0", kind="int"),
        "ResetRetries": ConfigKey("1", kind="int"),
        "ChargeProfileMaxStackLevel": ConfigKey("8", readonly=True, kind="int"),
        "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", readonly=True),
        "ChargingScheduleMaxPeriods": ConfigKey("24", readonly=True, kind="int"),
        "MaxChargingProfilesInstalled": ConfigKey("16", readonly=True, kind="int"),
        "GetConfigurationMaxKeys": ConfigKey("50", readonly=True, kind="int"),
        "SupportedFeatureProfiles": ConfigKey(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,"
            "RemoteTrigger",
            readonly=True,
        ),
        "AvailabilityState": ConfigKey("Available", readonly=True),
    }


class KeyStore:
    """Typed access plus the accept/reject rules of ChangeConfiguration."""

    def __init__(self, keys: dict[str, ConfigKey]) -> None:
        self.keys = keys

    def get(self, name: str) -> ConfigKey | None:
        """The key, or None if unknown."""
        return self.keys.get(name)

    def get_int(self, name: str, default: int) -> int:
        """Integer value of ``name`` (``default`` if missing or malformed)."""
        key = self.keys.get(name)
        try:
            return int(key.value) if key is not None else default
        except ValueError:
            return default

    def get_bool(self, name: str) -> bool:
        """Boolean value of ``name`` (False if missing)."""
        key = self.keys.get(name)
        return key is not None and key.value.lower() == "true"

    def set(self, name: str, value: str) -> str:
        """Change a key; returns Accepted / Rejected / NotSupported (1.6 wording)."""
        key = self.keys.get(name)
        if key is None:
            return "NotSupported"
        if key.readonly:
            return "Rejected"
        if key.kind == "int":
            try:
                if int(value) < 0:
                    return "Rejected"
            except ValueError:
                return "Rejected"
        if key.kind == "bool" and value.lower() not in ("true", "false"):
            return "Rejected"
        key.value = value.lower() if key.kind == "bool" else value
        return "Accepted"

    def force(self, name: str, value: str) -> None:
        """Set a key regardless of read-only (the charger itself changing it)."""
        if name in self.keys:
            self.keys[name].value = value
        else:
            self.keys[name] = ConfigKey(value)
