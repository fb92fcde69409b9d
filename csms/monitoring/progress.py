"""Live progress of each active charging session, folded from committed events.

:class:`SessionTracker` keeps, per charger and EVSE, the latest energy
register, power and state of charge of the session running there. It is the
one place that turns meter samples into the figures the stream pushes
(energy, power, SoC, estimated completion) and the metrics export (power
drawn, energy delivered). It is pure state: no I/O, fed one event at a time.

Estimated completion comes from the SoC the EV reports: the average rate of
SoC rise since the session's first SoC sample, extrapolated to 100 %. Without
two SoC samples (or with a flat SoC) there is no estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from csms.events import (
    Event,
    MeterSample,
    MeterSampled,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.meter import ENERGY_REGISTER

POWER = "Power.Active.Import"
SOC = "SoC"
_PHASES_SUMMED = {"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"}


@dataclass(frozen=True, slots=True)
class SessionProgress:
    """Where one session stands (what the stream sends as ``session_progress``)."""

    charge_point_id: str
    evse_id: int | None
    transaction_id: str | None
    energy_wh: float | None  # delivered so far in this session
    power_w: float | None
    soc_percent: float | None
    estimated_completion_at: datetime | None
    updated_at: datetime
    ended: bool = False


@dataclass(slots=True)
class _Session:
    transaction_id: str | None
    register_start_wh: float | None = None
    register_wh: float | None = None
    power_w: float | None = None
    soc: float | None = None
    first_soc: tuple[datetime, float] | None = None
    last_soc_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Readings:
    """The figures one batch of samples gives (None: not in the batch)."""

    register_wh: float | None
    power_w: float | None
    soc: float | None
    at: datetime | None


def readings_of(samples: Iterable[MeterSample]) -> Readings:
    """Energy register, total power and SoC of a batch (the latest sample of each wins).

    Power reported per phase only is summed over the phases; a value without a
    phase is the total and wins over per-phase ones.
    """
    register: float | None = None
    total_power: float | None = None
    phase_power: dict[str, float] = {}
    soc: float | None = None
    at: datetime | None = None
    for sample in samples:
        if sample.measurand == ENERGY_REGISTER and sample.phase is None:
            register = sample.value
        elif sample.measurand == POWER:
            if sample.phase is None:
                total_power = sample.value
            elif sample.phase in _PHASES_SUMMED:
                phase_power[sample.phase] = sample.value
        elif sample.measurand == SOC:
            soc = sample.value
        else:
            continue
        at = sample.sampled_at if at is None else max(at, sample.sampled_at)
    power = total_power
    if power is None and phase_power:
        power = sum(phase_power.values())
    return Readings(register, power, soc, at)


def estimate_completion(
    first: tuple[datetime, float], now: tuple[datetime, float], target: float = 100.0
) -> datetime | None:
    """When SoC reaches ``target`` at the average rate from ``first`` to ``now``."""
    (t0, soc0), (t1, soc1) = first, now
    elapsed = (t1 - t0).total_seconds()
    if elapsed <= 0 or soc1 <= soc0:
        return None
    if soc1 >= target:
        return t1
    rate = (soc1 - soc0) / elapsed  # percent per second
    return t1 + timedelta(seconds=(target - soc1) / rate)


class SessionTracker:
    """Active sessions by (charger, EVSE); feed it with :meth:`apply`."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int | None], _Session] = {}
        # (charger, transaction) -> its key: a 2.0.1 TransactionEvent names its EVSE on the
        # first message only, and finding the others' session by a scan of every active
        # session cost the lease holder a scan per meter value (docs/profiling.md).
        self._by_transaction: dict[tuple[str, str | None], tuple[str, int | None]] = {}

    def apply(
        self, event: Event, *, with_progress: bool = True
    ) -> tuple[SessionProgress | None, float]:
        """Fold ``event`` in; return the session's new progress (if it moved) and Wh delivered.

        ``with_progress=False``: the progress is not built (None), for a caller that
        only counts the energy (the lease holder's gauges while no stream listens).

        The Wh are the increase of the energy register since the previous
        reading of the same session (never negative: a register going
        backwards is a fault for the rules to find, not negative delivery).
        """
        if isinstance(event, SessionStarted):
            key = (event.charge_point_id, event.evse_id)
            session = _Session(event.transaction_id, register_start_wh=event.meter_start_wh)
            session.register_wh = event.meter_start_wh
            self._forget(key)
            self._sessions[key] = session
            self._by_transaction.setdefault((key[0], session.transaction_id), key)
            delivered = self._fold(session, event.samples)
            return self._progress(key, session, event.occurred_at, with_progress), delivered
        if isinstance(event, SessionUpdated | SessionEnded):
            key = self._key_of(event.charge_point_id, event.evse_id, event.transaction_id)
            session = self._session_at(key, event.transaction_id)
            delivered = self._fold(session, event.samples)
            if isinstance(event, SessionEnded):
                if event.meter_stop_wh is not None:
                    delivered += self._advance_register(session, event.meter_stop_wh)
                self._forget(key)
                return (
                    self._progress(key, session, event.occurred_at, with_progress, ended=True),
                    delivered,
                )
            return self._progress(key, session, event.occurred_at, with_progress), delivered
        if isinstance(event, MeterSampled) and event.transaction_id is not None:
            key = self._key_of(event.charge_point_id, event.evse_id, event.transaction_id)
            session = self._session_at(key, event.transaction_id)
            delivered = self._fold(session, event.samples)
            return self._progress(key, session, event.occurred_at, with_progress), delivered
        return None, 0.0

    def seed(
        self,
        active: Iterable[tuple[str, int | None, str | None, float | None, float | None]],
    ) -> None:
        """Start over from the active sessions: (charger, EVSE, transaction, start, last Wh).

        For a tracker that has not seen every event (it started late, or followed
        none while nobody needed it): the energy of a session counts from its start
        register, and an event it then sees again adds nothing (the register does
        not go back); power and SoC come with the next samples.
        """
        self._sessions = {}
        self._by_transaction = {}
        for charge_point_id, evse_id, transaction_id, start_wh, last_wh in active:
            session = _Session(transaction_id, register_start_wh=start_wh)
            session.register_wh = last_wh if last_wh is not None else start_wh
            key = (charge_point_id, evse_id)
            self._forget(key)
            self._sessions[key] = session
            self._by_transaction.setdefault((charge_point_id, transaction_id), key)

    def power_by_charger(self) -> dict[str, float]:
        """Sum of the last power reported by each charger's active sessions."""
        watts: dict[str, float] = {}
        for (charge_point_id, _evse), session in self._sessions.items():
            watts[charge_point_id] = watts.get(charge_point_id, 0.0) + (session.power_w or 0.0)
        return watts

    def __len__(self) -> int:
        return len(self._sessions)

    def _key_of(
        self, charge_point_id: str, evse_id: int | None, transaction_id: str | None
    ) -> tuple[str, int | None]:
        if evse_id is not None:
            return (charge_point_id, evse_id)
        # A 2.0.1 TransactionEvent names its EVSE only on the first message.
        key = self._by_transaction.get((charge_point_id, transaction_id))
        if key is not None:
            return key
        # Not indexed: none should be (_forget hands the entry on); kept as the scan it
        # replaced, so a missed entry costs a scan, never a session.
        for (cp, evse), session in self._sessions.items():
            if cp == charge_point_id and session.transaction_id == transaction_id:
                self._by_transaction[(cp, transaction_id)] = (cp, evse)
                return (cp, evse)
        return (charge_point_id, None)

    def _session_at(self, key: tuple[str, int | None], transaction_id: str | None) -> _Session:
        """The session at ``key``, a new one of ``transaction_id`` if none is known there."""
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(transaction_id)
            self._by_transaction.setdefault((key[0], transaction_id), key)
        return session

    def _forget(self, key: tuple[str, int | None]) -> None:
        """Drop the session at ``key`` (if any) and its entry in the transaction index."""
        session = self._sessions.pop(key, None)
        if session is None:
            return
        index = (key[0], session.transaction_id)
        if self._by_transaction.get(index) == key:
            del self._by_transaction[index]
            # A charger reusing the id on another EVSE: the entry goes to the next such
            # session in order, the one a scan of the active sessions finds first (a later
            # start of the id must not take it). One scan per session end, not per event.
            for other, rest in self._sessions.items():
                if other[0] == key[0] and rest.transaction_id == session.transaction_id:
                    self._by_transaction[index] = other
                    break

    def _fold(self, session: _Session, samples: Iterable[MeterSample]) -> float:
        readings = readings_of(samples)
        delivered = 0.0
        if readings.register_wh is not None:
            delivered = self._advance_register(session, readings.register_wh)
        if readings.power_w is not None:
            session.power_w = readings.power_w
        if readings.soc is not None and readings.at is not None:
            session.soc = readings.soc
            session.last_soc_at = readings.at
            if session.first_soc is None:
                session.first_soc = (readings.at, readings.soc)
        return delivered

    @staticmethod
    def _advance_register(session: _Session, register_wh: float) -> float:
        if session.register_start_wh is None:
            session.register_start_wh = register_wh
        previous = session.register_wh
        session.register_wh = register_wh
        if previous is None or register_wh <= previous:
            return 0.0
        return register_wh - previous

    @staticmethod
    def _progress(
        key: tuple[str, int | None],
        session: _Session,
        at: datetime,
        wanted: bool = True,
        *,
        ended: bool = False,
    ) -> SessionProgress | None:
        if not wanted:
            return None
        energy = None
        if session.register_wh is not None and session.register_start_wh is not None:
            energy = max(0.0, session.register_wh - session.register_start_wh)
        eta = None
        if session.first_soc is not None and session.soc is not None and session.last_soc_at:
            eta = estimate_completion(session.first_soc, (session.last_soc_at, session.soc))
        return SessionProgress(
            charge_point_id=key[0],
            evse_id=key[1],
            transaction_id=session.transaction_id,
            energy_wh=energy,
            power_w=0.0 if ended else session.power_w,
            soc_percent=session.soc,
            estimated_completion_at=None if ended else eta,
            updated_at=at,
            ended=ended,
        )
