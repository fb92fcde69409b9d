"""OCPP 2.0.1 charger: the frames it sends (the commands it answers: :mod:`.v201_handlers`).

Each EVSE has exactly one connector (``connectorId`` 1). Internally statuses
and stop reasons use 1.6 names (see :mod:`charge_point_sim.model`); this module
maps them to ``connectorStatus`` / ``stoppedReason`` / ``triggerReason``.
"""

from __future__ import annotations

import uuid
from typing import Any

from ocpp.v201 import ChargePoint as _ChargePoint201
from ocpp.v201 import call

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock, iso
from charge_point_sim.meter import meter_value_v201
from charge_point_sim.model import Connector, QueuedTx, Reservation, Sample, Session
from charge_point_sim.stats import Stats
from charge_point_sim.v201_device import V201Device
from charge_point_sim.v201_handlers import V201Handlers, id_token
from charge_point_sim.v201_security import V201Security

_STATUS = {"Available": "Available", "Reserved": "Reserved", "Unavailable": "Unavailable"}
_STATUS["Faulted"] = "Faulted"
_STOPPED = {"HardReset": "ImmediateReset", "SoftReset": "ImmediateReset", "UnlockCommand": "Other"}
_TRIGGER = {
    "Remote": "RemoteStop",
    "Local": "StopAuthorized",
    "EVDisconnected": "EVDeparted",
    "HardReset": "ResetCommand",
    "SoftReset": "ResetCommand",
    "UnlockCommand": "UnlockCommand",
    "DeAuthorized": "Deauthorized",
}
_CHARGING_STATE = {"Charging": "Charging", "SuspendedEV": "SuspendedEV"}
_CHARGING_STATE["SuspendedEVSE"] = "SuspendedEVSE"


class V201Charger(V201Device, V201Security, V201Handlers, _ChargePoint201):  # type: ignore[misc]
    """A 2.0.1 charging station; EVSE ids 1..N, EVSE 0 = the whole station."""

    subprotocol = "ocpp2.0.1"

    def __init__(self, cfg: ChargerConfig, clock: SimClock, stats: Stats, seed: int = 0) -> None:
        V201Handlers.__init__(self, cfg, clock, stats, seed)
        self.costs_received: list[tuple[float, str]] = []  # CostUpdated (total, transaction)
        if cfg.cost_updates:
            self.keys.force("TariffCostAvailable", "true")
            self.keys.force("TariffCostEnabled", "true")
        _ChargePoint201.__init__(self, cfg.charger_id, None, response_timeout=cfg.call_timeout)

    # --------------------------------------------------------------- outgoing
    async def _boot(self) -> tuple[str, int]:
        res = await self.send(
            call.BootNotification(
                charging_station={
                    "model": self.cfg.model,
                    "vendor_name": self.cfg.vendor,
                    "firmware_version": "1.0.0",
                    "serial_number": self.cfg.charger_id,
                },
                reason=self.boot_reason,
            )
        )
        return str(res.status), int(res.interval)

    async def _send_status(self, conn: Connector) -> None:
        status = _STATUS.get(conn.status, "Occupied")
        if self.reported.get(conn.id) == status:
            return
        await self.send(
            call.StatusNotification(
                timestamp=iso(self.clock.now()),
                connector_status=status,
                evse_id=conn.id,
                connector_id=1,
            )
        )
        self.reported[conn.id] = status

    async def _heartbeat(self) -> None:
        await self.try_send(call.Heartbeat())

    async def _authorize(self, id_tag: str) -> str:
        res = await self.send(call.Authorize(id_token=id_token(id_tag)))
        return str(res.id_token_info.get("status"))

    def _event(
        self, s: Session, sample: Sample, event_type: str, trigger: str, **extra: Any
    ) -> QueuedTx:
        """Queue a TransactionEvent; seqNo and timestamp are fixed when it happens."""
        seq = s.next_seq()
        offline = not self.online
        conn = self.connectors[s.evse_id]
        info: dict[str, Any] = {"transaction_id": s.transaction_id}
        if event_type != "Ended":
            info["charging_state"] = _CHARGING_STATE.get(conn.status, "EVConnected")
        else:
            info["charging_state"] = "EVConnected"
            info["stopped_reason"] = _STOPPED.get(s.stop_reason or "Local", s.stop_reason)
        if event_type == "Started" and s.remote_start_id is not None:
            info["remote_start_id"] = s.remote_start_id

        def build(was_offline: bool) -> Any:
            return call.TransactionEvent(
                event_type=event_type,
                timestamp=iso(sample.timestamp),
                trigger_reason=trigger,
                seq_no=seq,
                transaction_info=info,
                meter_value=[meter_value_v201(sample)],
                offline=True if was_offline else None,
                number_of_phases_used=sample.phases if event_type == "Started" else None,
                **extra,
            )

        return QueuedTx("TransactionEvent", build, sample.timestamp, offline)

    def _tx_started(self, s: Session, sample: Sample, trigger: str) -> QueuedTx:
        s.transaction_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        item = self._event(
            s,
            sample,
            "Started",
            trigger,
            id_token=id_token(s.id_tag),
            evse={"id": s.evse_id, "connector_id": 1},
            reservation_id=s.reservation_id,
        )

        def done(res: Any) -> None:
            info = res.id_token_info if res is not None else None
            self.transaction_authorized(s, info.get("status") if info else None)

        item.on_result = done
        return item

    def _tx_meter(self, s: Session, sample: Sample) -> QueuedTx:
        return self._event(s, sample, "Updated", "MeterValuePeriodic")

    def _charging_state_changed(self, conn: Connector, s: Session) -> None:
        # A TransactionEvent at once, as stations do (not only with the next meter value).
        sample = self.sample(conn, "Sample.Periodic")
        self.enqueue_tx(self._event(s, sample, "Updated", "ChargingStateChanged"))

    def _tx_ended(self, s: Session, sample: Sample) -> QueuedTx:
        trigger = _TRIGGER.get(s.stop_reason or "Local", "AbnormalCondition")
        return self._event(s, sample, "Ended", trigger)

    async def send_meter_values(self, conn: Connector) -> None:
        """Non-transaction MeterValues (TriggerMessage)."""
        await self.try_send(
            call.MeterValues(
                evse_id=conn.id, meter_value=[meter_value_v201(self.sample(conn, "Trigger"))]
            )
        )

    async def _reservation_ended(self, res: Reservation, status: str) -> None:
        await self.try_send(
            call.ReservationStatusUpdate(reservation_id=res.id, reservation_update_status=status)
        )
