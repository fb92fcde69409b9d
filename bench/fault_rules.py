"""Cost of fault-detection rule evaluation per meter sample (no I/O: the rules alone).

Feeds :class:`csms.monitoring.rules_engine.FaultDetector` the meter values a
fleet of 22 kW chargers sends (what the simulator sends: energy register,
power, three phase currents, voltage, SoC, temperature = 8 samples per
message), one message per connector per minute of charger time, and reports
microseconds per sample and per message, for healthy charging and for a fleet
where every connector is in a fault condition (findings are built each time).

    .venv/bin/python -m bench.fault_rules --chargers 200 --minutes 60

With ``--engine`` it times the alert engine's whole path for one event instead
(``AlertService.observe``: thresholds, rules, lifecycle; no I/O) over the meter
values bench.ingest's fleet sends, in least process CPU per event.

With ``--delays`` it also starts a CSMS in this process (fresh embedded
PostgreSQL), drives every rule with the ocpp library's chargers and prints the
detection delay per rule: from sending the message that completes the fault
condition (the charger-clock holds are met by the messages' timestamps) to
the alert row being stored. Heartbeat gaps are timed from the moment the
silence crosses its threshold (tick every 0.1 s here; 5 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.events import MeterSample, MeterSampled, SessionUpdated
from csms.logs import configure_logging
from csms.monitoring import alerts_store
from csms.monitoring.rules import RULES, Finding, Thresholds
from csms.monitoring.rules_engine import FaultDetector
from csms.storage.embedded import stop_embedded
from tests.ocpp_clients import charger_v16, charger_v201

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PHASES = ("L1", "L2", "L3")


def message(cp: str, evse: int, minute: int, wh: float, faulty: bool) -> MeterSampled:
    at = T0 + timedelta(minutes=minute, seconds=evse)
    power = 11_000.0
    amps = 45.0 if faulty else power / 3 / 230
    samples = [
        MeterSample(at, "Energy.Active.Import.Register", wh, "Wh", None, None, "Outlet"),
        MeterSample(at, "Power.Active.Import", power, "W", None, None, "Outlet"),
        *(MeterSample(at, "Current.Import", amps, "A", ph, None, "Outlet") for ph in PHASES),
        MeterSample(at, "Voltage", 190.0 if faulty else 231.0, "V", "L1-N", None, "Outlet"),
        MeterSample(at, "SoC", 50.0, "Percent", None, None, "EV"),
        MeterSample(at, "Temperature", 75.0 if faulty else 36.0, "Celsius", None, None, "Body"),
    ]  # fmt: skip
    return MeterSampled(
        charge_point_id=cp, occurred_at=at, evse_id=evse, connector_id=evse,
        transaction_id="1", samples=tuple(samples),
    )  # fmt: skip


def run(chargers: int, minutes: int, faulty: bool) -> tuple[float, int, int, int]:
    """(seconds spent in the detector, messages, samples, findings)."""
    messages = []
    for minute in range(minutes):
        for c in range(chargers):
            for evse in (1, 2):
                # Healthy: the register follows 11 kW; faulty: stuck register.
                wh = 1000.0 + (0 if faulty else 11_000 / 60 * minute)
                messages.append(message(f"CP-{c}", evse, minute, round(wh), faulty))
    detector, th = FaultDetector(), Thresholds(clock_skew_max_s=0)
    received = T0
    findings = 0
    start = time.perf_counter()
    for m in messages:
        for obs in detector.observe(m, received, th):
            findings += isinstance(obs, Finding)
    elapsed = time.perf_counter() - start
    return elapsed, len(messages), sum(len(m.samples) for m in messages), findings


def fleet_message(cp: int, step: int) -> MeterSampled | SessionUpdated:
    """What bench.ingest's fleet sends (bench.ocpp_load): register, power, and current and
    voltage per phase; a 1.6 MeterValues or a 2.0.1 TransactionEvent, half each."""
    at = datetime.now(UTC) + timedelta(seconds=10 * step)
    wh = 1000.0 + 30 * step
    samples = [
        MeterSample(at, "Energy.Active.Import.Register", wh, "Wh", None, None, None),
        MeterSample(at, "Power.Active.Import", 11000.0, "W", None, None, None),
    ]
    for ph in PHASES:
        samples.append(MeterSample(at, "Current.Import", 16.0, "A", ph, None, None))
        samples.append(MeterSample(at, "Voltage", 230.0, "V", f"{ph}-N", None, None))
    envelope: dict[str, Any] = {
        "charge_point_id": f"CP-{cp}", "occurred_at": at, "evse_id": 1, "connector_id": 1,
        "transaction_id": "1", "samples": tuple(samples),
    }  # fmt: skip
    return SessionUpdated(**envelope) if cp % 2 else MeterSampled(**envelope)


def run_engine(chargers: int, steps: int, repeat: int) -> float:
    """Least process CPU per event of the alert engine's whole path for one event
    (AlertService.observe: thresholds, every rule, the lifecycle), healthy fleet."""
    from csms.monitoring.alerts_service import AlertService

    # No I/O on this path: the pool, bus and leases are only kept by the service.
    context: Any = SimpleNamespace(settings=Settings(), pool=None, bus=None, leases=None)
    service = AlertService(context)
    events = [fleet_message(c, step) for step in range(steps) for c in range(chargers)]
    received = datetime.now(UTC) + timedelta(seconds=1)
    best = float("inf")
    for _ in range(repeat):
        service.detector.chargers.clear()
        start = time.process_time()
        for event in events:
            service.observe(event, received)
        best = min(best, (time.process_time() - start) / len(events))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--delays", action="store_true", help="also time detection per rule")
    parser.add_argument(
        "--engine", action="store_true", help="only the engine's path per event (bench.ingest's)"
    )
    args = parser.parse_args()
    if args.engine:
        us = run_engine(args.chargers, args.minutes, max(args.repeat, 5))
        print(f"alert engine, bench.ingest's meter values: {us:5.1f} µs per event (least)")
        return
    for faulty in (False, True):
        per_sample, per_message = [], []
        for _ in range(args.repeat):
            elapsed, n_messages, n_samples, findings = run(args.chargers, args.minutes, faulty)
            per_sample.append(elapsed / n_samples * 1e6)
            per_message.append(elapsed / n_messages * 1e6)
        label = "every connector faulty" if faulty else "healthy charging     "
        print(
            f"{label}: {statistics.median(per_sample):6.2f} µs per sample, "
            f"{statistics.median(per_message):6.1f} µs per message "
            f"({n_messages} messages, {n_samples} samples, {findings} findings; "
            f"median of {args.repeat})"
        )


# -- detection delay per rule, against a running CSMS ---------------------------------


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _meter16(connector: int, t: datetime, **values: float) -> Any:
    names = {
        "volts": ("Voltage", "L1-N"),
        "amps": ("Current.Import", "L1"),
        "celsius": ("Temperature", None),
        "wh": ("Energy.Active.Import.Register", None),
        "watts": ("Power.Active.Import", None),
    }
    sampled = []
    for name, value in values.items():
        measurand, phase = names[name]
        sampled.append({"measurand": measurand, "value": f"{value:.1f}",
                        **({"phase": phase} if phase else {})})  # fmt: skip
    return call16.MeterValues(
        connector_id=connector, meter_value=[{"timestamp": _iso(t), "sampled_value": sampled}]
    )


async def _alert_after(pool: asyncpg.Pool, cp_id: str, rule: str, started: float) -> float:
    """Milliseconds from ``started`` until the alert row exists (polled every ms)."""
    while not await pool.fetchval(
        "SELECT count(*) FROM alerts WHERE charge_point_id = $1 AND rule = $2", cp_id, rule
    ):
        if time.perf_counter() - started > 30:
            raise TimeoutError(f"no {rule} alert for {cp_id}")
        await asyncio.sleep(0.001)
    return (time.perf_counter() - started) * 1000


async def _drive(url: str, pool: asyncpg.Pool, rule: str) -> float:
    """Send ``rule``'s fault from a fresh 1.6 charger; ms from the last message to the alert."""
    cp_id = f"D-{rule}"
    async with charger_v16(url, cp_id) as cp:
        boot = call16.BootNotification(charge_point_model="M1", charge_point_vendor="V")
        await cp.call(boot)
        t = datetime.now(UTC)
        minute = [t + timedelta(seconds=60 * i) for i in range(8)]
        final: Any
        if rule in ("connector_faulted", "connector_error"):
            status = "Faulted" if rule == "connector_faulted" else "Charging"
            final = call16.StatusNotification(connector_id=1, error_code="HighTemperature",
                                              status=status, timestamp=_iso(t))  # fmt: skip
        elif rule in ("voltage_out_of_band", "overcurrent", "current_over_limit"):
            values = {"volts": 190.0} if rule == "voltage_out_of_band" else {
                "amps": 45.0 if rule == "overcurrent" else 25.0}  # fmt: skip
            await cp.call(_meter16(1, minute[0], **values))
            final = _meter16(1, minute[1], **values)
        elif rule == "temperature_high":
            final = _meter16(1, t, celsius=80.0)
        elif rule == "temperature_rising_fast":
            await cp.call(_meter16(1, minute[0], celsius=38.0))
            final = _meter16(1, minute[2], celsius=52.0)
        elif rule == "stuck_meter":
            for m in minute[:5]:
                await cp.call(_meter16(1, m, wh=5000.0, watts=7000.0))
            final = _meter16(1, minute[5], wh=5000.0, watts=7000.0)
        elif rule in ("register_backwards", "register_jump"):
            await cp.call(_meter16(1, minute[0], wh=5000.0))
            final = _meter16(1, minute[1], wh=4000.0 if rule == "register_backwards" else 60_000.0)
        elif rule == "short_sessions":
            for i in range(3):
                begin, end = _iso(minute[i]), _iso(minute[i] + timedelta(seconds=5))
                start = await cp.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="BENCH", meter_start=0, timestamp=begin
                    )
                )
                final = call16.StopTransaction(
                    meter_stop=1, transaction_id=start.transaction_id, timestamp=end
                )
                if i < 2:
                    await cp.call(final)
        elif rule == "reboot_loop":
            await cp.call(boot)
            final = boot
        elif rule == "heartbeat_gap":
            # Silent from the boot on: the gap threshold (2 x 1 s) is crossed 2 s later.
            started = time.perf_counter() + 2.0
            return await _alert_after(pool, cp_id, rule, started)
        elif rule == "clock_skew":
            ahead = t + timedelta(hours=1)
            started = time.perf_counter()
            for i in range(4):
                await cp.call(_meter16(1, ahead + timedelta(seconds=i), celsius=30.0))
                await asyncio.sleep(0.4)
            return await _alert_after(pool, cp_id, rule, started)
        else:
            raise ValueError(rule)
        started = time.perf_counter()
        await cp.call(final)
        return await _alert_after(pool, cp_id, rule, started)


async def _component_problem(url: str, pool: asyncpg.Pool) -> float:
    cp_id = "D-component_problem"
    async with charger_v201(url, cp_id) as cp:
        await cp.call(call201.BootNotification(
            charging_station={"model": "M2", "vendor_name": "V"}, reason="PowerUp"))  # fmt: skip
        now = _iso(datetime.now(UTC))
        item = {"event_id": 1, "timestamp": now, "trigger": "Delta", "actual_value": "true",
                "event_notification_type": "HardWiredNotification", "tech_code": "RCD",
                "component": {"name": "RCD", "evse": {"id": 1}},
                "variable": {"name": "Problem"}}  # fmt: skip
        started = time.perf_counter()
        await cp.call(call201.NotifyEvent(generated_at=now, seq_no=0, event_data=[item]))
        return await _alert_after(pool, cp_id, "component_problem", started)


async def measure_delays() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-fault-pg-"))
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir,
        log_level="error", heartbeat_interval=1, alerts_heartbeat_gap_multiple=2.0,
        alerts_tick_interval=0.1, last_seen_flush_interval=0.1, alerts_clock_skew_max=60.0,
        monitoring_silence_factor=1000.0,
    )  # fmt: skip
    configure_logging(LogFormat.CONSOLE, "error")  # alerts log a warning each
    app = Csms(settings)
    await app.start()
    try:
        await app.pool.execute("INSERT INTO id_tokens (id_token) VALUES ('BENCH')")
        service: Any = next(s for s in app.services if s.name == "alerts")
        service.detector.limit_of = lambda cp_id, evse_id: 16.0  # a known 16 A limit
        # Clock skew: 1 s of skew on every message instead of the default minute.
        await alerts_store.set_threshold_overrides(
            app.pool, "charger", "D-clock_skew", {"clock_skew_hold_s": 1.0}
        )
        await service.reload_thresholds()
        url = app.ocpp_url.replace("localhost", "127.0.0.1")
        print("detection delay per rule (last message sent -> alert stored):")
        for rule in RULES:
            if rule == "component_problem":
                ms = await _component_problem(url, app.pool)
            else:
                ms = await _drive(url, app.pool, rule)
            note = {
                "heartbeat_gap": " (from crossing the threshold; tick and flush every 0.1 s)",
                "clock_skew": " (from the first skewed message; hold set to 1 s)",
            }.get(rule, "")
            print(f"  {rule:24s} {ms:8.1f} ms{note}")
    finally:
        await app.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
    if "--delays" in sys.argv:
        asyncio.run(measure_delays())
