"""The session tracker finds a 2.0.1 session by its transaction id through an index.

A TransactionEvent names its EVSE on the first message only; the tracker used to
find the session of the others by scanning every active session, once per meter
value on the lease holder. The index must give what the scan gave, for any
sequence of starts, updates (with or without their EVSE), samples, ends and seeds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.events import (
    Event,
    MeterSample,
    MeterSampled,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.monitoring.progress import SessionTracker

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ScanningTracker(SessionTracker):
    """The tracker as it was: a scan of the active sessions for an update without EVSE."""

    def _key_of(
        self, charge_point_id: str, evse_id: int | None, transaction_id: str | None
    ) -> tuple[str, int | None]:
        if evse_id is not None:
            return (charge_point_id, evse_id)
        for (cp, evse), session in self._sessions.items():
            if cp == charge_point_id and session.transaction_id == transaction_id:
                return (cp, evse)
        return (charge_point_id, None)


CHARGERS = st.sampled_from(["CP-1", "CP-2"])
EVSES = st.sampled_from([1, 2])
TRANSACTIONS = st.sampled_from(["t1", "t2", "t3"])
STEP = st.tuples(
    st.sampled_from(["start", "update", "update-no-evse", "sample", "end", "end-no-evse", "seed"]),
    CHARGERS,
    EVSES,
    TRANSACTIONS,
    st.floats(min_value=0, max_value=10_000, allow_nan=False),
)


def _event(kind: str, cp: str, evse: int, tx: str, wh: float, at: datetime) -> Event:
    samples = (
        MeterSample(at, "Energy.Active.Import.Register", wh, "Wh"),
        MeterSample(at, "Power.Active.Import", wh / 2, "W"),
    )
    common = {"charge_point_id": cp, "occurred_at": at}
    if kind == "start":
        return SessionStarted(
            **common, evse_id=evse, connector_id=1, transaction_id=tx, id_token=None,
            meter_start_wh=wh,
        )  # fmt: skip
    if kind.startswith("update"):
        no_evse = kind == "update-no-evse"
        return SessionUpdated(
            **common, transaction_id=tx, evse_id=None if no_evse else evse, samples=samples
        )
    if kind == "sample":
        return MeterSampled(
            **common, evse_id=evse, connector_id=1, transaction_id=tx, samples=samples
        )
    no_evse = kind == "end-no-evse"
    return SessionEnded(
        **common, transaction_id=tx, evse_id=None if no_evse else evse, meter_stop_wh=wh
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_the_index_finds_what_the_scan_found(steps: list[tuple[str, str, int, str, float]]) -> None:
    indexed, scanning, counting = SessionTracker(), ScanningTracker(), SessionTracker()
    for n, (kind, cp, evse, tx, wh) in enumerate(steps):
        if kind == "seed":
            active = [(cp, evse, tx, wh, wh + 10), ("CP-2", None, "t1", None, 5.0)]
            indexed.seed(active)
            scanning.seed(active)
            counting.seed(active)
            continue
        event = _event(kind, cp, evse, tx, wh, T0 + timedelta(seconds=n))
        progress, delivered = indexed.apply(event)
        assert (progress, delivered) == scanning.apply(event), (n, kind)
        # Without the progress (no stream listening): the same energy, nothing built.
        assert counting.apply(event, with_progress=False) == (None, delivered)
    assert indexed.power_by_charger() == scanning.power_by_charger()
    assert len(indexed) == len(scanning)


def test_an_update_without_its_evse_reaches_its_session() -> None:
    tracker = SessionTracker()
    at = T0
    tracker.apply(_event("start", "CP-1", 2, "t9", 100.0, at))
    progress, delivered = tracker.apply(_event("update-no-evse", "CP-1", 0, "t9", 160.0, at))
    assert progress is not None and progress.evse_id == 2
    assert delivered == 60.0
    progress, _ = tracker.apply(_event("end-no-evse", "CP-1", 0, "t9", 200.0, at))
    assert progress is not None and progress.ended and progress.evse_id == 2
    assert len(tracker) == 0
