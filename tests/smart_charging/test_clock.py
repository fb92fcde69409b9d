"""The load manager reads every time through the clock it is given (csms/clock.py).

A fake clock that only moves when the test moves it: the settle time before an
increase, and the grace after a limit change before a meter value counts, are
decided on it - not on the process's real clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from csms.bus import EventBus
from csms.clock import SYSTEM_CLOCK
from csms.config import Settings
from csms.events import MeterSample, MeterSampled
from csms.router import CommandRouter, ConnectionRegistry
from csms.services import ServiceContext
from smart_charging.service import SAMPLE_GRACE_S, SAMPLE_TRUST_S, SmartChargingService
from smart_charging.tracking import Tracked, Verdict


class FakeClock:
    """Time moves only through :meth:`advance` - or by a sleep on it, which records it."""

    def __init__(self) -> None:
        self.at = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return datetime(2026, 1, 5, tzinfo=UTC) + timedelta(seconds=self.at)

    def monotonic(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.at += seconds


def _service(clock: FakeClock, settle: float = 5.0) -> SmartChargingService:
    """The real service, built without a database (only its time decisions are used)."""
    registry = ConnectionRegistry()
    settings = Settings(smart_charging_settle=settle, smart_charging_idle_after=120.0)
    context = ServiceContext(
        None,  # type: ignore[arg-type]  # no pool: nothing here touches the database
        CommandRouter(registry), registry, settings, EventBus(),
        None, None, "offline", "", clock,  # type: ignore[arg-type]
    )  # fmt: skip
    return SmartChargingService(context)


def test_the_service_takes_the_system_clock_by_default() -> None:
    registry = ConnectionRegistry()
    context = ServiceContext(
        None, CommandRouter(registry), registry, Settings(), EventBus(),  # type: ignore[arg-type]
        None, None, "offline", "",  # type: ignore[arg-type]
    )  # fmt: skip
    assert SmartChargingService(context).clock is SYSTEM_CLOCK


async def test_an_increase_waits_for_the_settle_time_on_the_injected_clock() -> None:
    clock = FakeClock()
    service = _service(clock, settle=5.0)
    service.decreased_at["s"] = clock.monotonic()
    clock.advance(2.0)
    # Within the settle time: the increase waits the remaining 3 s of the fake clock (a
    # real sleep of 3 s would make this test take 3 s; wait_for bounds it).
    await asyncio.wait_for(service.planning._settle("s"), timeout=1.0)
    assert clock.slept == [3.0]
    # Past the settle time: no wait at all.
    clock.advance(10.0)
    await asyncio.wait_for(service.planning._settle("s"), timeout=1.0)
    assert clock.slept == [3.0]


def _draws(amps: float, at: datetime) -> MeterSampled:
    sample = MeterSample(sampled_at=at, measurand="Current.Import", value=amps, unit="A")
    return MeterSampled(
        charge_point_id="CP", occurred_at=at, evse_id=1, connector_id=1,
        transaction_id="tx", samples=(sample,),
    )  # fmt: skip


def test_a_meter_value_counts_once_the_limit_has_settled_on_the_injected_clock() -> None:
    clock = FakeClock()
    service = _service(clock, settle=5.0)
    t = Tracked("CP", 1, "tx", limit=16.0, changed_at=clock.monotonic())
    service.track("CP/1", t)
    # Just after the limit changed, a low draw may predate it: not judged.
    assert service._measure(_draws(4.0, clock.now())) is Verdict.STEADY
    assert t.observed_max is None
    # Once the settle time and the grace have passed on the fake clock, it is.
    clock.advance(5.0 + SAMPLE_GRACE_S + 0.1)
    assert service._measure(_draws(4.0, clock.now())) is Verdict.UNDERDRAW
    assert t.observed_max == 5.0
    # No draw at all for idle_after seconds of the fake clock: the EV gives its share back.
    assert service._measure(_draws(0.0, clock.now())) is not Verdict.IDLE
    clock.advance(121.0)
    assert service._measure(_draws(0.0, clock.now())) is Verdict.IDLE
    assert t.idle


def test_a_value_taken_before_a_limit_change_and_delivered_late_is_not_judged() -> None:
    clock = FakeClock()
    service = _service(clock, settle=5.0)
    t = Tracked("CP", 1, "tx", limit=32.0, changed_at=clock.monotonic())
    service.track("CP/1", t)
    clock.advance(60.0)
    before = clock.now()  # the EV draws 32 A now ...
    t.limit, t.changed_at, t.changed_on = 10.0, clock.monotonic(), clock.now()  # ... then 10 A
    clock.advance(120.0)  # the old value arrives two minutes later (a queue, a reconnect)
    assert service._measure(_draws(32.0, before)) is Verdict.STEADY
    assert t.assumed is None  # still steered: nothing set aside for it
    # A value taken after the EV had time to follow is judged, however late it arrives.
    after = t.changed_on + timedelta(seconds=10)
    assert service._measure(_draws(32.0, after)) is Verdict.OVERDRAW
    assert t.assumed == 32.0


def test_a_charger_clock_far_behind_does_not_hide_an_overdraw_for_ever() -> None:
    clock = FakeClock()
    service = _service(clock, settle=5.0)
    t = Tracked("CP", 1, "tx", limit=10.0, changed_at=clock.monotonic(), changed_on=clock.now())
    service.track("CP/1", t)
    clock.advance(SAMPLE_TRUST_S + 1.0)
    an_hour_behind = clock.now() - timedelta(hours=1)
    assert service._measure(_draws(32.0, an_hour_behind)) is Verdict.OVERDRAW
