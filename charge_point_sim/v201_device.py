"""OCPP 2.0.1: device model, monitoring, display messages, customer information,
charging-profile reports and transaction status, as a charging station answers them.

Reports are sent after the request is answered (``defer``), in parts of at most
``ItemsPerMessage`` (DeviceDataCtrlr; the 1.6 key GetConfigurationMaxKeys)
items, numbered by ``seqNo`` with ``tbc`` on all but the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ocpp.v201 import call, call_result

from charge_point_sim.charger import handles
from charge_point_sim.clock import iso
from charge_point_sim.commands import SimCharger
from charge_point_sim.config import V201_VARIABLES, ConfigKey

_DATA_TYPE = {"int": "integer", "bool": "boolean", "str": "string"}


class V201Device(SimCharger):
    """Mixed into :class:`~charge_point_sim.v201.V201Charger` before the basic handlers."""

    _monitors: dict[int, dict[str, Any]]
    _display: dict[int, dict[str, Any]]
    _raw_profiles: dict[int, dict[str, Any]]

    def _state(self, name: str) -> dict[int, dict[str, Any]]:
        if not hasattr(self, name):
            setattr(self, name, {})
        state: dict[int, dict[str, Any]] = getattr(self, name)
        return state

    def _items_per_message(self) -> int:
        return max(1, self.keys.get_int("GetConfigurationMaxKeys", 50))

    def _send_parts(
        self, items: Sequence[Any], build: Callable[[list[Any], int, bool], Any]
    ) -> None:
        size = self._items_per_message()
        parts = [list(items[i : i + size]) for i in range(0, len(items), size)] or [[]]

        async def send_all() -> None:
            for seq_no, part in enumerate(parts):
                await self.try_send(build(part, seq_no, seq_no < len(parts) - 1))

        self.defer(send_all)

    # ------------------------------------------------------------ device model
    def _report_item(self, component: str, variable: str, key: ConfigKey) -> dict[str, Any]:
        return {
            "component": {"name": component},
            "variable": {"name": variable},
            "variable_attribute": [
                {
                    "type": "Actual",
                    "value": key.value,
                    "mutability": "ReadOnly" if key.readonly else "ReadWrite",
                    "persistent": True,
                }
            ],
            "variable_characteristics": {
                "data_type": _DATA_TYPE.get(key.kind, "string"),
                "supports_monitoring": True,
            },
        }

    def _inventory(self, wanted: Callable[[str, str], bool]) -> list[dict[str, Any]]:
        items = []
        for (component, variable), name in V201_VARIABLES.items():
            key = self.keys.get(name)
            if key is not None and wanted(component, variable):
                items.append(self._report_item(component, variable, key))
        return items

    def _notify_report(self, request_id: int, items: list[dict[str, Any]]) -> None:
        def build(part: list[Any], seq_no: int, tbc: bool) -> Any:
            return call.NotifyReport(
                request_id=request_id,
                generated_at=iso(self.clock.now()),
                seq_no=seq_no,
                tbc=tbc,
                report_data=part or None,
            )

        self._send_parts(items, build)

    @handles("GetBaseReport")
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        if report_base == "SummaryInventory":
            items = self._inventory(lambda c, v: c == "ChargingStation")
        else:
            items = self._inventory(lambda c, v: True)
        self._notify_report(request_id, items)
        return call_result.GetBaseReport(status="Accepted")

    @handles("GetReport")
    def on_get_report(
        self, request_id: int, component_variable: list[dict[str, Any]] | None = None, **_: Any
    ) -> Any:
        asked = component_variable or []

        def wanted(component: str, variable: str) -> bool:
            return not asked or any(
                a["component"]["name"] == component
                and (not a.get("variable") or a["variable"]["name"] == variable)
                for a in asked
            )

        items = self._inventory(wanted)
        if not items:
            return call_result.GetReport(status="EmptyResultSet")
        self._notify_report(request_id, items)
        return call_result.GetReport(status="Accepted")

    # -------------------------------------------------------------- monitoring
    @handles("SetVariableMonitoring")
    def on_set_variable_monitoring(
        self, set_monitoring_data: list[dict[str, Any]], **_: Any
    ) -> Any:
        monitors = self._state("_monitors")
        results = []
        for asked in set_monitoring_data:
            known = (asked["component"]["name"], asked["variable"]["name"]) in V201_VARIABLES
            result = {k: asked[k] for k in ("type", "severity", "component", "variable")}
            if not known:
                result["status"] = "UnknownVariable"
            else:
                monitor_id = int(asked.get("id") or max(monitors, default=0) + 1)
                monitors[monitor_id] = {**asked, "id": monitor_id}
                result |= {"status": "Accepted", "id": monitor_id}
            results.append(result)
        return call_result.SetVariableMonitoring(set_monitoring_result=results)

    @handles("ClearVariableMonitoring")
    def on_clear_variable_monitoring(self, id: list[int], **_: Any) -> Any:
        monitors = self._state("_monitors")
        results = [
            {"id": i, "status": "Accepted" if monitors.pop(i, None) is not None else "NotFound"}
            for i in id
        ]
        return call_result.ClearVariableMonitoring(clear_monitoring_result=results)

    @handles("SetMonitoringBase")
    def on_set_monitoring_base(self, monitoring_base: str, **_: Any) -> Any:
        if monitoring_base == "HardWiredOnly":
            self._state("_monitors").clear()
        return call_result.SetMonitoringBase(status="Accepted")

    @handles("SetMonitoringLevel")
    def on_set_monitoring_level(self, severity: int, **_: Any) -> Any:
        self.monitoring_level = severity
        return call_result.SetMonitoringLevel(status="Accepted")

    @handles("GetMonitoringReport")
    def on_get_monitoring_report(self, request_id: int, **_: Any) -> Any:
        monitors = list(self._state("_monitors").values())
        if not monitors:
            return call_result.GetMonitoringReport(status="EmptyResultSet")
        items = [
            {
                "component": m["component"],
                "variable": m["variable"],
                "variable_monitoring": [
                    {
                        "id": m["id"],
                        "transaction": bool(m.get("transaction")),
                        "value": m["value"],
                        "type": m["type"],
                        "severity": m["severity"],
                    }
                ],
            }
            for m in monitors
        ]

        def build(part: list[Any], seq_no: int, tbc: bool) -> Any:
            return call.NotifyMonitoringReport(
                request_id=request_id,
                seq_no=seq_no,
                tbc=tbc,
                generated_at=iso(self.clock.now()),
                monitor=part or None,
            )

        self._send_parts(items, build)
        return call_result.GetMonitoringReport(status="Accepted")

    def notify_event(
        self, component: str, variable: str, actual_value: str, monitor_id: int | None = None
    ) -> Any:
        """A NotifyEvent as a monitor (or a fault) would raise it; for tests and faults."""
        event: dict[str, Any] = {
            "event_id": 1,
            "timestamp": iso(self.clock.now()),
            "trigger": "Delta",
            "actual_value": actual_value,
            "event_notification_type": "CustomMonitor",
            "component": {"name": component},
            "variable": {"name": variable},
        }
        if monitor_id is not None:
            event["variable_monitoring_id"] = monitor_id
        return self.send(
            call.NotifyEvent(generated_at=iso(self.clock.now()), seq_no=0, event_data=[event])
        )

    @handles("SetVariables")
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kwargs: Any) -> Any:
        """As usual, then a NotifyEvent for each changed variable a monitor watches (N07)."""
        answer = super().on_set_variables(set_variable_data, **kwargs)  # type: ignore[misc]
        watched = {
            (m["component"]["name"], m["variable"]["name"]): m["id"]
            for m in self._state("_monitors").values()
        }
        for asked, result in zip(set_variable_data, answer.set_variable_result, strict=False):
            key = (asked["component"]["name"], asked["variable"]["name"])
            if result["attribute_status"] == "Accepted" and key in watched:
                value, monitor_id = str(asked["attribute_value"]), watched[key]

                async def notify(
                    key: tuple[str, str] = key, value: str = value, monitor_id: int = monitor_id
                ) -> None:
                    await self.notify_event(*key, value, monitor_id)

                self.defer(notify)
        return answer

    # -------------------------------------------------------- display messages
    @handles("SetDisplayMessage")
    def on_set_display_message(self, message: dict[str, Any], **_: Any) -> Any:
        self._state("_display")[int(message["id"])] = message
        return call_result.SetDisplayMessage(status="Accepted")

    @handles("GetDisplayMessages")
    def on_get_display_messages(
        self, request_id: int, id: list[int] | None = None, **_: Any
    ) -> Any:
        shown = [m for i, m in self._state("_display").items() if not id or i in id]
        if not shown:
            return call_result.GetDisplayMessages(status="Unknown")

        def build(part: list[Any], seq_no: int, tbc: bool) -> Any:
            return call.NotifyDisplayMessages(request_id=request_id, message_info=part, tbc=tbc)

        self._send_parts(shown, build)
        return call_result.GetDisplayMessages(status="Accepted")

    @handles("ClearDisplayMessage")
    def on_clear_display_message(self, id: int, **_: Any) -> Any:
        found = self._state("_display").pop(id, None) is not None
        return call_result.ClearDisplayMessage(status="Accepted" if found else "Unknown")

    # ---------------------------------------------------- customer information
    @handles("CustomerInformation")
    def on_customer_information(
        self,
        request_id: int,
        report: bool,
        clear: bool,
        id_token: dict[str, Any] | None = None,
        customer_identifier: str | None = None,
        **_: Any,
    ) -> Any:
        token = str(id_token["id_token"]) if id_token else customer_identifier
        if token is None:
            return call_result.CustomerInformation(status="Invalid")
        known = token in self.local_list or token in self.auth_cache
        data = f"{token}: local list {self.local_list.get(token, '-')}, cache " + str(
            self.auth_cache.get(token, "-")
        )
        if clear:
            self.local_list.pop(token, None)
            self.auth_cache.pop(token, None)
        if report:

            async def notify() -> None:
                await self.try_send(
                    call.NotifyCustomerInformation(
                        data=data if known else f"{token}: no data",
                        seq_no=0,
                        generated_at=iso(self.clock.now()),
                        request_id=request_id,
                        tbc=False,
                    )
                )

            self.defer(notify)
        return call_result.CustomerInformation(status="Accepted")

    # -------------------------------------------------------- charging profiles
    @handles("SetChargingProfile")
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **kwargs: Any
    ) -> Any:
        result = super().on_set_charging_profile(evse_id, charging_profile, **kwargs)  # type: ignore[misc]
        if result.status == "Accepted":
            self._state("_raw_profiles")[int(charging_profile["id"])] = {
                "evse_id": evse_id,
                "profile": charging_profile,
            }
        return result

    @handles("GetChargingProfiles")
    def on_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        **_: Any,
    ) -> Any:
        installed = {p.id for p in self.profiles.profiles}
        ids = charging_profile.get("charging_profile_id")
        purpose = charging_profile.get("charging_profile_purpose")
        level = charging_profile.get("stack_level")
        chosen: dict[int, list[dict[str, Any]]] = {}
        for pid, raw in self._state("_raw_profiles").items():
            p = raw["profile"]
            if pid not in installed or (evse_id is not None and raw["evse_id"] != evse_id):
                continue
            if (ids and pid not in ids) or (purpose and p["charging_profile_purpose"] != purpose):
                continue
            if level is not None and p["stack_level"] != level:
                continue
            chosen.setdefault(raw["evse_id"], []).append(p)
        if not chosen:
            return call_result.GetChargingProfiles(status="NoProfiles")
        groups = sorted(chosen.items())

        async def report() -> None:
            for n, (evse, profiles) in enumerate(groups):
                await self.try_send(
                    call.ReportChargingProfiles(
                        request_id=request_id,
                        charging_limit_source="CSO",
                        evse_id=evse,
                        charging_profile=profiles,
                        tbc=n < len(groups) - 1,
                    )
                )

        self.defer(report)
        return call_result.GetChargingProfiles(status="Accepted")

    # ------------------------------------------------------ transaction status
    @handles("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        queued = [q for q in self.tx_queue]
        if transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=bool(queued))
        ongoing = self.find_session(transaction_id) is not None
        return call_result.GetTransactionStatus(
            ongoing_indicator=ongoing, messages_in_queue=bool(queued)
        )
