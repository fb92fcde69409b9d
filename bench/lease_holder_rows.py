"""CPU per row of what the lease holder does with another worker's meter value (no I/O).

    python -m bench.lease_holder_rows [--chargers 500] [--rounds 20] [--repeat 3]

With ``--workers 2`` the node holding the ``alerts`` and ``monitoring`` leases reads
every meter value the other worker stored as a row of the event feed: it decodes the
payload's JSON text (``FeedRow.event``), runs fault detection's rules over it (and
hands their clears to the alert lifecycle) and the live session tracker. This feeds
that path the meter values of a fleet (half 1.6 MeterValues, half 2.0.1
TransactionEvent Updated, eight samples each: register, power, three currents, three
voltages) as stored text, and prints the process CPU per row of each part (the best of
``--repeat`` runs). Run it with another checkout's interpreter to compare versions
(docs/profiling.md, "Meter values on the lease holder").
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from csms.cluster.feed_rows import FeedRow
from csms.events import Event, MeterSample, MeterSampled, SessionStarted, SessionUpdated
from csms.monitoring.alerts import Lifecycle
from csms.monitoring.progress import SessionTracker
from csms.monitoring.rules import Clear, Thresholds
from csms.monitoring.rules_engine import FaultDetector

MEASURANDS = (
    ("Energy.Active.Import.Register", None, "Wh", 0.0),
    ("Power.Active.Import", None, "W", 7000.0),
    ("Current.Import", "L1", "A", 10.0),
    ("Current.Import", "L2", "A", 10.1),
    ("Current.Import", "L3", "A", 10.2),
    ("Voltage", "L1-N", "V", 230.0),
    ("Voltage", "L2-N", "V", 231.0),
    ("Voltage", "L3-N", "V", 229.0),
)


def fleet(chargers: int, rounds: int, t0: datetime) -> list[Event]:
    events: list[Event] = []
    for r in range(rounds):
        at = t0 + timedelta(seconds=10 * r)
        samples = tuple(
            MeterSample(at, m, 1000.0 + 2.0 * r if i == 0 else v, unit, phase,
                        "Sample.Periodic", "Outlet")
            for i, (m, phase, unit, v) in enumerate(MEASURANDS)
        )  # fmt: skip
        for c in range(chargers):
            cp = f"CP-{c}"
            if c % 2:
                events.append(MeterSampled(charge_point_id=cp, occurred_at=at, evse_id=1,
                                           connector_id=1, transaction_id=str(c),
                                           samples=samples))  # fmt: skip
            else:
                events.append(SessionUpdated(charge_point_id=cp, occurred_at=at,
                                             transaction_id=f"tx-{c}", evse_id=1,
                                             connector_id=1, trigger_reason="MeterValuePeriodic",
                                             charging_state="Charging", seq_no=r + 1,
                                             samples=samples))  # fmt: skip
    return events


def run_once(chargers: int, rows: list[tuple[Event, str]], t0: datetime) -> dict[str, float]:
    detector, lifecycle, tracker, th = FaultDetector(), Lifecycle(), SessionTracker(), Thresholds()
    for c in range(chargers):
        transaction_id = f"tx-{c}" if c % 2 == 0 else str(c)
        started = SessionStarted(charge_point_id=f"CP-{c}", occurred_at=t0, evse_id=1,
                                 connector_id=1, id_token="T", meter_start_wh=1000.0,
                                 transaction_id=transaction_id)  # fmt: skip
        tracker.apply(started)
    spent = {"decode": 0.0, "rules": 0.0, "tracker": 0.0}
    clock = time.process_time
    for stored, text in rows:
        start = clock()
        row = FeedRow((1, 1), t0, event_id=stored.event_id, type=stored.type,
                      charge_point_id=stored.charge_point_id, occurred_at=stored.occurred_at,
                      payload=text)  # fmt: skip
        event = row.event
        assert event is not None
        decoded = clock()
        for obs in detector.observe(event, event.occurred_at + timedelta(seconds=1), th):
            if isinstance(obs, Clear):
                key = (event.charge_point_id, obs.evse_id, obs.connector_id, obs.rule)
                lifecycle.cleared(key, t0)
        ruled = clock()
        tracker.apply(event, with_progress=False)
        tracked = clock()
        spent["decode"] += decoded - start
        spent["rules"] += ruled - decoded
        spent["tracker"] += tracked - ruled
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t0 = datetime.now(UTC).replace(microsecond=0)
    events = fleet(args.chargers, args.rounds, t0)
    # The text as Postgres prints a jsonb payload (", " and ": "): what the feed reads.
    rows = [(e, json.dumps(json.loads(e.payload_json()))) for e in events]
    runs = [run_once(args.chargers, rows, t0) for _ in range(args.repeat)]
    best = {part: min(run[part] for run in runs) / len(rows) * 1e6 for part in runs[0]}
    total = sum(best.values())
    parts = ", ".join(f"{part} {us:.1f}" for part, us in best.items())
    print(
        f"{len(rows)} rows, us of CPU per row (best of {args.repeat}): {parts}; total {total:.1f}"
    )


if __name__ == "__main__":
    main()
