"""Cost of fault-detection rule evaluation per meter sample (no I/O: the rules alone).

Feeds :class:`csms.monitoring.rules_engine.FaultDetector` the meter values a
fleet of 22 kW chargers sends (what the simulator sends: energy register,
power, three phase currents, voltage, SoC, temperature = 8 samples per
message), one message per connector per minute of charger time, and reports
microseconds per sample and per message, for healthy charging and for a fleet
where every connector is in a fault condition (findings are built each time).

    .venv/bin/python -m bench.fault_rules --chargers 200 --minutes 60
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from csms.events import MeterSample, MeterSampled
from csms.monitoring.rules import Finding, Thresholds
from csms.monitoring.rules_engine import FaultDetector

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
