"""Version-neutral effects of CSMS commands and of fault injection.

The 1.6 / 2.0.1 handlers (:mod:`charge_point_sim.v16_handlers`,
:mod:`charge_point_sim.v201_handlers`) only translate payloads and call these
methods, so Reset, ChangeAvailability, TriggerMessage, firmware / log uploads,
reservations, the local list, the authorization cache and smart charging
behave the same in both protocol versions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from charge_point_sim.charger import CallFailed, NotConnected
from charge_point_sim.ev import random_ev
from charge_point_sim.model import Connector, PendingReset, Reservation
from charge_point_sim.profiles import Profile, Purpose, TxContext, composite_schedule
from charge_point_sim.sessions import SessionCharger

VENDOR_ID = "csms-sim"
"""DataTransfer vendorId the simulator answers (it echoes ``data``)."""

FIRMWARE_STEPS = ("Downloading", "Downloaded", "Installing", "Installed")
UPLOAD_STEPS = ("Uploading", "Uploaded")
STEP_SECONDS = 5.0
"""Simulated seconds between two firmware / upload status notifications."""


class SimCharger(SessionCharger):
    """A complete simulated charger minus the protocol wording (v16 / v201 add that)."""

    # ----------------------------------------------------------- version hooks
    async def _reservation_ended(self, res: Reservation, status: str) -> None:
        """A reservation expired (2.0.1 sends ReservationStatusUpdate; 1.6 nothing)."""

    # ------------------------------------------------------------------ reset
    def request_reset(
        self, stop_reason: str, boot_reason: str, on_idle: bool = False, evse_id: int | None = None
    ) -> str:
        """Reset the charger (or one EVSE): Accepted / Scheduled / Rejected.

        ``on_idle`` (2.0.1 ``OnIdle``) waits until the sessions in scope have ended;
        meanwhile no new session starts there.
        """
        if evse_id is not None and evse_id not in self.connectors:
            return "Rejected"
        reset = PendingReset(stop_reason, boot_reason, evse_id)
        if on_idle and self._busy(evse_id):
            self.pending_reset = reset
            return "Scheduled"
        self.defer(lambda: self._do_reset(reset))
        return "Accepted"

    def _busy(self, evse_id: int | None) -> bool:
        return any(c.session for c in self.connectors.values() if evse_id in (None, c.id))

    def _session_ended(self, conn: Connector) -> None:
        reset = self.pending_reset
        if reset is not None and not self._busy(reset.evse_id):
            self.pending_reset = None
            self.spawn(self._do_reset(reset))

    async def _do_reset(self, reset: PendingReset) -> None:
        if reset.evse_id is None:
            await self.reboot(reset.stop_reason, reset.boot_reason)
            return
        conn = self.connectors[reset.evse_id]
        self.stop_session(conn.id, reset.stop_reason)
        await self._wait_idle([conn])
        await self.set_status(conn, "Unavailable")
        await self.clock.sleep(STEP_SECONDS)
        await self.set_status(conn, conn.idle_status())

    async def _wait_idle(self, conns: Sequence[Connector], real_s: float = 5.0) -> None:
        for _ in range(int(real_s / 0.01)):
            if not any(c.session for c in conns):
                return
            await asyncio.sleep(0.01)

    async def reboot(self, stop_reason: str, boot_reason: str) -> None:
        """Reset: stop sessions, drop the link, BootNotification again on reconnect."""
        self.pending_reset = None
        for conn in self.connectors.values():
            self.stop_session(conn.id, stop_reason)
        await self._wait_idle(list(self.connectors.values()))
        self.booted = False
        self.boot_reason = boot_reason
        self.drop_connection()

    # ------------------------------------------------------ availability, unlock
    def change_availability(self, connector_id: int, operative: bool) -> str:
        """ChangeAvailability on one connector or (0) all: Accepted / Scheduled / Rejected."""
        targets = (
            list(self.connectors.values())
            if connector_id == 0
            else [c for c in self.connectors.values() if c.id == connector_id]
        )
        if not targets:
            return "Rejected"
        scheduled = False
        for conn in targets:
            if not operative and conn.session is not None:
                conn.pending_inoperative, scheduled = True, True
                continue
            conn.operative, conn.pending_inoperative = operative, False
            if conn.session is None:
                self.defer(self._refresh(conn))
        return "Scheduled" if scheduled else "Accepted"

    def _refresh(self, conn: Connector) -> Callable[[], Awaitable[None]]:
        """A deferrable that re-reports ``conn``'s idle status."""

        async def run() -> None:
            await self.set_status(conn, conn.idle_status())

        return run

    def unlock(self, connector_id: int) -> bool:
        """UnlockConnector (1.6): stops a running session (reason UnlockCommand)."""
        if connector_id not in self.connectors:
            return False
        self.stop_session(connector_id, "UnlockCommand")
        return True

    # -------------------------------------------------------------- triggers
    def trigger_message(
        self, requested: str, target: int | None, messages: Mapping[str, Callable[[], Any]]
    ) -> str:
        """TriggerMessage: Accepted / Rejected / NotImplemented; the message follows.

        ``messages`` maps version-specific actions to payload factories (e.g.
        ``FirmwareStatusNotification``); the common ones are built here.
        """
        conns = [c for c in self.connectors.values() if target in (None, 0) or c.id == target]
        if target and not conns:
            return "Rejected"

        async def boot() -> None:
            self.boot_reason = "Triggered"
            try:
                await self._boot()
            finally:
                self.boot_reason = "PowerUp"

        async def statuses() -> None:
            for conn in conns:
                self.reported.pop(conn.id, None)  # report even if unchanged
                await self.try_status(conn)

        async def meters() -> None:
            for conn in conns:
                await self.send_meter_values(conn)

        common: dict[str, Callable[[], Awaitable[Any]]] = {
            "BootNotification": boot,
            "Heartbeat": self._heartbeat,
            "StatusNotification": statuses,
            "MeterValues": meters,
        }
        action = common.get(requested)
        if action is None and requested in messages:
            build = messages[requested]

            async def action() -> None:
                await self.try_send(build())

        if action is None:
            return "NotImplemented"
        self.defer(self._quietly(action))
        return "Accepted"

    def _quietly(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            with contextlib.suppress(NotConnected, CallFailed):
                await fn()

        return run

    # ------------------------------------------------ firmware, logs, vendor data
    def start_firmware_update(self, retrieve_at: datetime, notify: Callable[[str], Any]) -> None:
        """UpdateFirmware: wait for ``retrieve_at`` (at most 1 h), then report each step."""
        wait = min(max(0.0, (retrieve_at - self.clock.now()).total_seconds()), 3600.0)

        def state(status: str) -> None:
            self.firmware_status = status

        self.defer(lambda: self._progress(wait, FIRMWARE_STEPS, state, notify))

    def start_upload(self, notify: Callable[[str], Any]) -> None:
        """GetDiagnostics / GetLog: report Uploading, Uploaded."""

        def state(status: str) -> None:
            self.upload_status = status

        self.defer(lambda: self._progress(0.0, UPLOAD_STEPS, state, notify))

    async def _progress(
        self,
        wait: float,
        steps: Sequence[str],
        state: Callable[[str], None],
        notify: Callable[[str], Any],
    ) -> None:
        await self.clock.sleep(wait)
        for step in steps:
            state(step)
            await self.try_send(notify(step))
            await self.clock.sleep(STEP_SECONDS)
        state("Idle")

    def data_transfer(self, vendor_id: str, message_id: str | None, data: Any) -> tuple[str, Any]:
        """DataTransfer: vendor ``csms-sim`` echoes ``data`` (message id absent or "echo")."""
        if vendor_id != VENDOR_ID:
            return "UnknownVendorId", None
        if message_id not in (None, "echo"):
            return "UnknownMessageId", None
        return "Accepted", data

    # ----------------------------------------------------- reservations, auth
    def reserve(self, connector_id: int, res: Reservation) -> str:
        """ReserveNow on a connector: Accepted / Occupied / Faulted / Unavailable."""
        conn = self.connectors.get(connector_id)
        if conn is None:
            return "Rejected"
        if conn.faulted:
            return "Faulted"
        if not conn.operative:
            return "Unavailable"
        if conn.session is not None or (conn.reservation and conn.reservation.id != res.id):
            return "Occupied"
        conn.reservation = res

        async def hold() -> None:
            await self.set_status(conn, "Reserved")
            await self.clock.sleep((res.expiry - self.clock.now()).total_seconds())
            if conn.reservation is res:  # neither used, cancelled nor replaced
                conn.reservation = None
                if conn.session is None:
                    await self.set_status(conn, conn.idle_status())
                await self._reservation_ended(res, "Expired")

        self.defer(hold)
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation: True if such a reservation existed."""
        for conn in self.connectors.values():
            if conn.reservation is not None and conn.reservation.id == reservation_id:
                conn.reservation = None
                if conn.session is None:
                    self.defer(self._refresh(conn))
                return True
        return False

    def apply_local_list(
        self, version: int, full: bool, entries: Sequence[tuple[str, str | None]], disabled: str
    ) -> str:
        """SendLocalList; ``entries`` are (id tag, status or None = remove).

        Returns Accepted / Failed / VersionMismatch, or ``disabled`` (the version's
        wording) when LocalAuthListEnabled is false.
        """
        if not self.keys.get_bool("LocalAuthListEnabled"):
            return disabled
        if len(entries) > self.keys.get_int("SendLocalListMaxLength", 100):
            return "Failed"
        if not full and version <= self.local_list_version:
            return "VersionMismatch"
        if full:
            self.local_list.clear()
        for tag, status in entries:
            if status is None:
                self.local_list.pop(tag, None)
            else:
                self.local_list[tag] = status
        self.local_list_version = version
        return "Accepted"

    def clear_cache(self) -> str:
        """ClearCache: empties the authorization cache (Rejected if the cache is off)."""
        if not self.keys.get_bool("AuthorizationCacheEnabled"):
            return "Rejected"
        self.auth_cache.clear()
        return "Accepted"

    # ---------------------------------------------------- remote start, profiles
    def remote_start(
        self,
        connector_id: int | None,
        id_tag: str,
        profile: Callable[[int], Profile] | None,
        remote_start_id: int | None = None,
    ) -> bool:
        """RemoteStartTransaction / RequestStartTransaction; True = Accepted.

        ``profile`` parses the optional TxProfile for the chosen connector.
        """
        conn = (
            self.connectors.get(connector_id)
            if connector_id is not None
            else self.free_connector(id_tag)
        )
        if conn is None or not self.can_start(conn, id_tag):
            return False
        if profile is not None:
            try:
                parsed = profile(conn.id)
            except (KeyError, ValueError, IndexError):
                return False
            if parsed.purpose != Purpose.TX or not self.profiles.install(parsed):
                return False
        authorize = self.keys.get_bool("AuthorizeRemoteTxRequests")
        ev = random_ev(self.rng)
        conn_id = conn.id

        async def start() -> None:
            await self.start_session(conn_id, id_tag, ev, remote_start_id, authorize)

        self.defer(start)
        return True

    def set_profile(self, evse_id: int, parse: Callable[[], Profile]) -> str:
        """SetChargingProfile: Accepted / Rejected."""
        if evse_id != 0 and evse_id not in self.connectors:
            return "Rejected"
        try:
            profile = parse()
        except (KeyError, ValueError, IndexError):
            return "Rejected"
        if profile.unit not in self.rate_units():
            return "Rejected"  # a unit this charger's schedules do not take
        conn = self.connectors.get(evse_id)
        s = conn.session if conn is not None else None
        tx_ok = s is not None and profile.transaction_id in (None, s.transaction_id)
        ok = self.profiles.install(profile, tx_active=tx_ok)
        if ok:
            self.limits_changed()
        return "Accepted" if ok else "Rejected"

    def clear_profiles(
        self,
        profile_id: int | None,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> str:
        """ClearChargingProfile: Accepted if anything matched, else Unknown."""
        kind = self.profiles.purpose_of(purpose) if purpose else None
        removed = self.profiles.clear(profile_id, evse_id, kind, stack_level)
        if removed:
            self.limits_changed()
        return "Accepted" if removed else "Unknown"

    def composite(
        self, evse_id: int, duration: int, unit: str | None
    ) -> tuple[datetime, str, list[dict[str, Any]]] | None:
        """GetCompositeSchedule: (start, unit, periods) or None for an unknown EVSE."""
        if evse_id != 0 and evse_id not in self.connectors:
            return None
        rate_unit = unit or "A"
        now = self.clock.now().replace(microsecond=0)
        conn = self.connectors.get(evse_id)
        s = conn.session if conn is not None else None
        tx = TxContext(s.transaction_id or "", s.started) if s is not None else None
        periods = composite_schedule(
            self.profiles.profiles, evse_id, now, duration, rate_unit, tx, self.hardware_limit()
        )
        rendered = [
            {"start_period": p.start, "limit": p.limit, "number_phases": p.phases} for p in periods
        ]
        return now, rate_unit, rendered

    # ----------------------------------------------------------------- faults
    async def fault(self, connector_id: int, error_code: str = "GroundFailure") -> None:
        """Fault injection: the connector goes Faulted; a running session stops."""
        conn = self.connectors[connector_id]
        conn.faulted, conn.fault_code = True, error_code
        if not self.stop_session(connector_id, "Other"):
            await self.set_status(conn, "Faulted", error_code)

    async def clear_fault(self, connector_id: int) -> None:
        """Undo :meth:`fault`."""
        conn = self.connectors[connector_id]
        conn.faulted = False
        if conn.session is None:
            await self.set_status(conn, conn.idle_status())

    def power_drop(self, connector_id: int, factor: float, sim_seconds: float) -> None:
        """Fault injection: the grid delivers only ``factor`` of the limit for a while."""
        conn = self.connectors[connector_id]
        conn.power_factor = factor
        conn.power_drop_until = self.clock.now() + timedelta(seconds=sim_seconds)
