"""OCPP 1.6J charger: the frames it sends (the commands it answers: :mod:`.v16_handlers`)."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import ChargePoint as _ChargePoint16
from ocpp.v16 import call

from charge_point_sim.charger import ChargerConfig
from charge_point_sim.clock import SimClock, iso
from charge_point_sim.meter import meter_value_v16
from charge_point_sim.model import Connector, QueuedTx, Sample, Session
from charge_point_sim.stats import Stats
from charge_point_sim.v16_handlers import V16Handlers
from charge_point_sim.v16_security import V16Security


class V16Charger(V16Security, V16Handlers, _ChargePoint16):  # type: ignore[misc]
    """A 1.6J charge point; connector ids 1..N, connector 0 = the whole charger."""

    subprotocol = "ocpp1.6"

    def __init__(self, cfg: ChargerConfig, clock: SimClock, stats: Stats, seed: int = 0) -> None:
        V16Handlers.__init__(self, cfg, clock, stats, seed)
        _ChargePoint16.__init__(self, cfg.charger_id, None, response_timeout=cfg.call_timeout)

    # --------------------------------------------------------------- outgoing
    async def _boot(self) -> tuple[str, int]:
        res = await self.send(
            call.BootNotification(
                charge_point_model=self.cfg.model,
                charge_point_vendor=self.cfg.vendor,
                firmware_version="1.0.0",
                charge_point_serial_number=self.cfg.charger_id,
            )
        )
        return str(res.status), int(res.interval)

    async def _send_status(self, conn: Connector) -> None:
        await self.send(
            call.StatusNotification(
                connector_id=conn.id,
                error_code=conn.error_code,
                status=conn.status,
                timestamp=iso(self.clock.now()),
            )
        )

    async def _heartbeat(self) -> None:
        await self.try_send(call.Heartbeat())

    async def _authorize(self, id_tag: str) -> str:
        res = await self.send(call.Authorize(id_tag=id_tag))
        return str(res.id_tag_info.get("status"))

    def _tx_started(self, s: Session, sample: Sample, trigger: str) -> QueuedTx:
        def build(_offline: bool) -> Any:
            return call.StartTransaction(
                connector_id=s.evse_id,
                id_tag=s.id_tag,
                meter_start=int(s.meter_start_wh),
                timestamp=iso(sample.timestamp),
                reservation_id=s.reservation_id,
            )

        def done(res: Any) -> None:
            if res is None:
                self.stop_session(s.evse_id, "Other")
                return
            s.transaction_id = str(res.transaction_id)
            self.transaction_authorized(s, res.id_tag_info.get("status"))

        return QueuedTx("StartTransaction", build, sample.timestamp, not self.online, done)

    def _tx_meter(self, s: Session, sample: Sample) -> QueuedTx:
        def build(_offline: bool) -> Any:
            if s.transaction_id is None:
                return None
            return call.MeterValues(
                connector_id=s.evse_id,
                meter_value=[meter_value_v16(sample)],
                transaction_id=int(s.transaction_id),
            )

        return QueuedTx("MeterValues", build, sample.timestamp, not self.online)

    def _tx_ended(self, s: Session, sample: Sample) -> QueuedTx:
        def build(_offline: bool) -> Any:
            if s.transaction_id is None:
                return None
            return call.StopTransaction(
                meter_stop=int(sample.energy_wh),
                timestamp=iso(sample.timestamp),
                transaction_id=int(s.transaction_id),
                reason=s.stop_reason or "Local",
                id_tag=s.id_tag,
                transaction_data=[meter_value_v16(sample)],
            )

        return QueuedTx("StopTransaction", build, sample.timestamp, not self.online)

    async def send_meter_values(self, conn: Connector) -> None:
        """Non-queued MeterValues (TriggerMessage, or idle connectors)."""
        s = conn.session
        tx = int(s.transaction_id) if s is not None and s.transaction_id else None
        await self.try_send(
            call.MeterValues(
                connector_id=conn.id,
                meter_value=[meter_value_v16(self.sample(conn, "Trigger"))],
                transaction_id=tx,
            )
        )
