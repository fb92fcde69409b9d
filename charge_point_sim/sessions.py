"""Charging sessions: plug-in, authorisation, the charging loop, stop, shutdown.

:class:`SessionCharger` adds the session life cycle to the connection layer of
:class:`~charge_point_sim.charger.Charger`. Each running session is one task
that advances the EV model every tick under the limit of the profile stack and
queues meter values at the configured sample interval.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from charge_point_sim.charger import CallFailed, Charger, NotConnected
from charge_point_sim.ev import VOLTAGE, EVState, charge_step, seconds_to_full
from charge_point_sim.model import Connector, Sample, Session
from charge_point_sim.profiles import Limit, TxContext, limit_at


class SessionCharger(Charger):
    """Connection layer plus the session life cycle (see module docstring)."""

    async def shutdown(self, drain_timeout: float = 5.0) -> None:
        """Stop all sessions, give the queue ``drain_timeout`` real seconds, cancel tasks."""
        self._stopping = True
        for conn in self.connectors.values():
            if conn.session is not None:
                self.stop_session(conn.id, "Local")
        deadline = time.monotonic() + drain_timeout
        # Polling: the condition spans several tasks' state and is checked rarely.
        while time.monotonic() < deadline and (  # noqa: ASYNC110
            self.tx_queue or any(c.session for c in self.connectors.values())
        ):
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --------------------------------------------------------------- sessions
    def find_session(self, transaction_id: str) -> Session | None:
        """The running session with this transaction id."""
        for conn in self.connectors.values():
            s = conn.session
            if s is not None and s.transaction_id == transaction_id:
                return s
        return None

    def free_connector(self, id_tag: str | None = None) -> Connector | None:
        """First connector that can start a session for ``id_tag``."""
        for conn in self.connectors.values():
            if self.can_start(conn, id_tag):
                return conn
        return None

    def can_start(self, conn: Connector, id_tag: str | None) -> bool:
        """True if a new session may start on ``conn`` (reservations respected)."""
        if conn.session is not None or conn.faulted or not conn.operative or self._stopping:
            return False
        reset = self.pending_reset
        if reset is not None and reset.evse_id in (None, conn.id):
            return False  # a scheduled Reset waits for idle; no new sessions meanwhile
        res = conn.reservation
        if res is not None and res.expiry <= self.clock.now():
            conn.reservation = None
            res = None
        return res is None or res.id_tag == id_tag

    async def authorize_local(self, id_tag: str) -> bool:
        """Local list / cache / offline rules first, then Authorize with the CSMS.

        A refusal (Invalid, Blocked, Expired...) is counted in ``stats.auth_rejected``;
        the caller then starts no transaction for the token.
        """
        known = self.local_list.get(id_tag)
        if known is None and self.keys.get_bool("AuthorizationCacheEnabled"):
            known = self.auth_cache.get(id_tag)
        if not self.online:
            if known is not None:
                ok = known == "Accepted" and self.keys.get_bool("LocalAuthorizeOffline")
            else:
                ok = self.keys.get_bool("AllowOfflineTxForUnknownId")
            return self._auth_outcome(ok, known or "Unknown")
        if known is not None and self.keys.get_bool("LocalPreAuthorize"):
            return self._auth_outcome(known == "Accepted", known)
        try:
            status = await self._authorize(id_tag)
        except NotConnected:
            ok = known == "Accepted" if known else self.keys.get_bool("AllowOfflineTxForUnknownId")
            return self._auth_outcome(ok, known or "Unknown")
        except CallFailed:
            return False  # counted as a CALL error, not as a refusal
        self.remember_authorization(id_tag, status)
        return self._auth_outcome(status == "Accepted", status)

    def _auth_outcome(self, ok: bool, status: str) -> bool:
        if not ok:
            self.stats.auth_rejected[status if status != "Accepted" else "Offline"] += 1
        return ok

    def remember_authorization(self, id_tag: str, status: str | None) -> None:
        """Keep the CSMS's verdict on ``id_tag`` in the authorization cache."""
        if status and self.keys.get_bool("AuthorizationCacheEnabled"):
            self.auth_cache[id_tag] = status

    def transaction_authorized(self, s: Session, status: str | None) -> None:
        """The CSMS's idTagInfo / idTokenInfo for a started transaction.

        Anything but Accepted ends the transaction (1.6 StopTransactionOnInvalidId,
        2.0.1 StopTxOnInvalidId, both true here) with reason DeAuthorized.
        """
        self.remember_authorization(s.id_tag, status)
        if status is None or status == "Accepted":
            return
        s.rejected = True
        self.stats.sessions_deauthorized += 1
        self.stop_session(s.evse_id, "DeAuthorized")

    async def start_session(
        self,
        connector_id: int,
        id_tag: str,
        ev: EVState,
        remote_start_id: int | None = None,
        authorize: bool = True,
    ) -> Session | None:
        """Plug in ``ev`` and start a transaction; None if refused."""
        conn = self.connectors.get(connector_id)
        if conn is None or not self.can_start(conn, id_tag):
            return None
        reservation = conn.reservation
        conn.session = placeholder = self._new_session(conn, id_tag, ev, remote_start_id)
        await self.set_status(conn, "Preparing")
        authorized = not authorize or await self.authorize_local(id_tag)
        # A stop asked for while authorizing (shutdown, Reset, fault...) wins too.
        if not authorized or placeholder.stop_reason is not None or self._stopping:
            conn.session = None
            await self.set_status(
                conn, conn.idle_status(), conn.fault_code if conn.faulted else "NoError"
            )
            self._session_ended(conn)
            return None
        s = placeholder
        if reservation is not None:
            s.reservation_id = reservation.id
            conn.reservation = None
        self.stats.sessions_started += 1
        trigger = "RemoteStart" if remote_start_id is not None else "Authorized"
        self.enqueue_tx(self._tx_started(s, self.sample(conn, "Transaction.Begin"), trigger))
        await self.set_status(conn, "Charging")
        s.task = self.spawn(self._session_loop(conn, s))
        return s

    def _new_session(
        self, conn: Connector, id_tag: str, ev: EVState, remote_start_id: int | None
    ) -> Session:
        self._session_counter += 1
        return Session(
            local_id=self._session_counter,
            evse_id=conn.id,
            id_tag=id_tag,
            ev=ev,
            started=self.clock.now(),
            meter_start_wh=conn.energy_wh,
            remote_start_id=remote_start_id,
        )

    def stop_session(self, connector_id: int, reason: str) -> bool:
        """Ask the session on ``connector_id`` to stop with an OCPP 1.6 reason name.

        A session still being authorized (no transaction yet) does not start.
        """
        conn = self.connectors.get(connector_id)
        if conn is None or conn.session is None:
            return False
        if conn.session.stop_reason is None:
            conn.session.stop_reason = reason
        conn.session.stop_event.set()
        return True

    def limit_w(self, conn: Connector, now: datetime) -> float:
        """Power the charger allows on ``conn`` now: profiles, hardware max, faults."""
        s = conn.session
        tx = TxContext(s.transaction_id or "", s.started) if s is not None else None
        limit = limit_at(self.profiles.profiles, conn.id, now, tx)
        watts = self.cfg.max_power_w if limit is None else min(limit.watts, self.cfg.max_power_w)
        if limit is not None and limit.amps is not None and s is not None:
            # An A limit holds per line: a single-phase EV gets amps x 230 V, not x 3.
            watts = min(watts, limit.amps * VOLTAGE * s.ev.spec.phases)
        if conn.power_drop_until is not None:
            if now < conn.power_drop_until:
                watts *= conn.power_factor
            else:
                conn.power_drop_until = None
        return watts

    def limits_changed(self) -> None:
        """Its charging profiles changed: every running session applies its limit now.

        At once, before the charger answers the command: the EV sees the new pilot at
        this simulated instant (its energy until now drawn under the old one), not when
        its task next runs - on a busy event loop, at an accelerated clock, that could
        be simulated seconds after the CSMS was told Accepted.
        """
        now = self.clock.now()
        for conn in self.connectors.values():
            s = conn.session
            if s is not None:
                if s.stepped_at is not None and s.stop_reason is None:
                    self._advance(conn, s, now)
                s.limit_changed.set()

    def _advance(self, conn: Connector, s: Session, now: datetime) -> float:
        """Step the EV to ``now`` under the limit in force now; returns that limit (W)."""
        if s.ev.departure is not None and s.stepped_at is not None:
            now = min(now, max(s.stepped_at, s.ev.departure))  # not past its departure
        limit = self.limit_w(conn, now)
        dt = (now - s.stepped_at).total_seconds() if s.stepped_at is not None else 0.0
        s.ev, s.power_w, energy = charge_step(s.ev, limit, max(0.0, dt))
        s.stepped_at = max(now, s.stepped_at) if s.stepped_at is not None else now
        if not conn.stuck_meter:
            conn.energy_wh += energy
            self.stats.energy_wh += energy
        conn.temperature_c = 25.0 + s.power_w / 2000.0 + conn.temperature_drift_c
        if self.on_draw is not None:
            self.on_draw()
        return limit

    def hardware_limit(self) -> Limit:
        """The charger's own maximum, used where no profile applies."""
        return Limit(self.cfg.max_power_w, 3)

    def sample(self, conn: Connector, context: str) -> Sample:
        """A meter reading of ``conn`` now."""
        s = conn.session
        return Sample(
            timestamp=self.clock.now(),
            context=context,
            energy_wh=conn.energy_wh,
            power_w=s.power_w if s is not None else 0.0,
            phases=s.ev.spec.phases if s is not None else 3,
            soc=s.ev.soc if s is not None else None,
            temperature_c=conn.temperature_c,
        )

    async def _session_loop(self, conn: Connector, s: Session) -> None:
        interval = max(1, self.keys.get_int("MeterValueSampleInterval", 60))
        tick = max(min(float(interval), 5.0), 0.05 * self.clock.speed)
        last_sample = self.clock.now()
        self._advance(conn, s, last_sample)  # plugged in under the limit in force now
        seen = s.ev.pilot_w
        wait = tick
        while s.stop_reason is None:
            stepped = s.stepped_at or last_sample
            if s.ev.departure is not None:  # it leaves at its own time, not at the next tick
                wait = min(wait, (s.ev.departure - stepped).total_seconds())
            full_in = seconds_to_full(s.ev)
            if full_in is not None:  # and says SuspendedEV when it is full, not a tick later
                wait = min(wait, full_in + 1e-3)
            await self._tick_wait(s, wait)
            limit = self._advance(conn, s, self.clock.now())
            now = s.stepped_at or last_sample
            # A new limit (here or in limits_changed): step again once the EV has followed
            # it (its delay and ramp), so what it draws changes when a real EV's would.
            follow = s.ev.spec.response_delay_s + s.ev.spec.ramp_s
            wait = min(tick, follow) if s.ev.pilot_w != seen and follow > 0 else tick
            seen = s.ev.pilot_w
            state = (
                "Charging" if s.power_w > 0 else ("SuspendedEVSE" if limit <= 0 else "SuspendedEV")
            )
            previous = conn.status
            await self.set_status(conn, state)
            if conn.status != previous and s.stop_reason is None:
                self._charging_state_changed(conn, s)
            interval = max(1, self.keys.get_int("MeterValueSampleInterval", 60))
            if interval and (now - last_sample).total_seconds() >= interval:
                last_sample = now
                self.enqueue_tx(self._tx_meter(s, self.sample(conn, "Sample.Periodic")))
            if s.stop_reason is None and s.ev.done(now):
                s.stop_reason = "EVDisconnected"
        s.power_w = 0.0
        self.enqueue_tx(self._tx_ended(s, self.sample(conn, "Transaction.End")))
        self.profiles.end_transaction(conn.id)
        await self.set_status(conn, "Finishing")
        conn.session = None
        self.stats.sessions_completed += 1
        if conn.pending_inoperative:
            conn.operative, conn.pending_inoperative = False, False
        await self.set_status(
            conn, conn.idle_status(), conn.fault_code if conn.faulted else "NoError"
        )
        self._session_ended(conn)

    async def _tick_wait(self, s: Session, sim_seconds: float) -> None:
        """Until the next tick: ``sim_seconds``, a stop, or a change of its limits."""
        stop = asyncio.ensure_future(s.stop_event.wait())
        changed = asyncio.ensure_future(s.limit_changed.wait())
        try:
            await asyncio.wait(
                {stop, changed},
                timeout=self.clock.real_seconds(sim_seconds),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stop.cancel()
            changed.cancel()
        s.limit_changed.clear()

    def _charging_state_changed(self, conn: Connector, s: Session) -> None:
        """Hook: Charging / SuspendedEV / SuspendedEVSE changed (1.6 says it by its status)."""

    def _session_ended(self, conn: Connector) -> None:
        """Hook: a session on ``conn`` has ended and its status is reported."""
