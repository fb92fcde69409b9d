"""Operator commands: one version-neutral request each, translated per OCPP version.

``COMMANDS`` maps the snake_case name used in the API path
(``/api/v1/chargers/{id}/commands/{name}``) to its request model and its 1.6
and 2.0.1 translations; :func:`build` picks the one the charger speaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from csms.events import Protocol
from handlers.commands import extended as x
from handlers.commands import models as m
from handlers.commands import v16, v201
from handlers.commands.v16 import NotInThisVersion

Translation = Callable[[Any, int], Any]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    model: type[m.Command]
    v16: Translation | None
    v201: Translation | None
    summary: str


_SPECS = (
    CommandSpec("remote_start", m.RemoteStart, v16.remote_start, v201.remote_start,
                "start a session (1.6 RemoteStartTransaction, 2.0.1 RequestStartTransaction)"),
    CommandSpec("remote_stop", m.RemoteStop, v16.remote_stop, v201.remote_stop,
                "stop a session by its transaction id"),
    CommandSpec("reset", m.Reset, v16.reset, v201.reset, "reboot the charger"),
    CommandSpec("unlock_connector", m.UnlockConnector, v16.unlock_connector,
                v201.unlock_connector, "release a stuck cable"),
    CommandSpec("change_availability", m.ChangeAvailability, v16.change_availability,
                v201.change_availability, "make a connector (or the charger) (in)operative"),
    CommandSpec("get_configuration", m.GetConfiguration, v16.get_configuration, None,
                "1.6 configuration keys (2.0.1: get_variables)"),
    CommandSpec("change_configuration", m.ChangeConfiguration, v16.change_configuration, None,
                "set a 1.6 configuration key (2.0.1: set_variables)"),
    CommandSpec("get_variables", m.GetVariables, None, v201.get_variables,
                "2.0.1 device-model variables (1.6: get_configuration)"),
    CommandSpec("set_variables", m.SetVariables, None, v201.set_variables,
                "set 2.0.1 device-model variables (1.6: change_configuration)"),
    CommandSpec("trigger_message", m.TriggerMessage, v16.trigger_message,
                v201.trigger_message, "ask the charger to send a message now"),
    CommandSpec("set_charging_profile", m.SetChargingProfile, v16.set_charging_profile,
                v201.set_charging_profile, "install a charging profile"),
    CommandSpec("clear_charging_profile", m.ClearChargingProfile, v16.clear_charging_profile,
                v201.clear_charging_profile, "remove charging profiles"),
    CommandSpec("get_composite_schedule", m.GetCompositeSchedule, v16.get_composite_schedule,
                v201.get_composite_schedule, "the schedule the charger will follow"),
    CommandSpec("data_transfer", m.DataTransfer, v16.data_transfer, v201.data_transfer,
                "vendor-specific message"),
    CommandSpec("update_firmware", m.UpdateFirmware, v16.update_firmware,
                v201.update_firmware, "install firmware from a URL"),
    CommandSpec("get_diagnostics", m.GetDiagnostics, v16.get_diagnostics, v201.get_log,
                "upload diagnostics (1.6 GetDiagnostics, 2.0.1 GetLog)"),
    CommandSpec("get_log", m.GetDiagnostics, v16.get_diagnostics, v201.get_log,
                "same as get_diagnostics"),
    CommandSpec("reserve_now", m.ReserveNow, v16.reserve_now, v201.reserve_now,
                "reserve a connector for a token"),
    CommandSpec("cancel_reservation", m.CancelReservation, v16.cancel_reservation,
                v201.cancel_reservation, "cancel a reservation"),
    CommandSpec("send_local_list", m.SendLocalList, v16.send_local_list,
                v201.send_local_list, "replace or update the charger's local token list"),
    CommandSpec("get_local_list_version", m.NoArguments, v16.get_local_list_version,
                v201.get_local_list_version, "version of the charger's local token list"),
    CommandSpec("clear_cache", m.NoArguments, v16.clear_cache, v201.clear_cache,
                "empty the charger's authorization cache"),
    # OCPP breadth (handlers/commands/extended.py)
    CommandSpec("install_certificate", x.InstallCertificate, x.install_certificate_v16,
                x.install_certificate_v201, "install a root certificate on the charger"),
    CommandSpec("delete_certificate", x.DeleteCertificate, x.delete_certificate_v16,
                x.delete_certificate_v201, "delete an installed certificate by its hash data"),
    CommandSpec("get_installed_certificate_ids", x.GetInstalledCertificateIds,
                x.installed_ids_v16, x.installed_ids_v201, "the charger's installed certificates"),
    CommandSpec("get_transaction_status", x.GetTransactionStatus, None, x.get_transaction_status,
                "2.0.1: is a transaction ongoing, are its messages still queued"),
    CommandSpec("get_base_report", x.GetBaseReport, None, x.get_base_report,
                "2.0.1: report the device model (stored, GET .../device-model)"),
)  # fmt: skip

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _SPECS}


def build(spec: CommandSpec, protocol: Protocol, command: m.Command, request_id: int) -> Any:
    """The OCPP request for ``command`` in the charger's version.

    Raises :class:`NotInThisVersion` when that version has no such request.
    """
    translate = spec.v16 if protocol is Protocol.V16 else spec.v201
    if translate is None:
        other = "2.0.1" if protocol is Protocol.V16 else "1.6"
        raise NotInThisVersion(f"{spec.name} is an OCPP {other} command; this charger speaks "
                               f"{protocol.value}")  # fmt: skip
    return translate(command, request_id)


__all__ = ["COMMANDS", "CommandSpec", "NotInThisVersion", "build"]
