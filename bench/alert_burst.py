"""Cost of an alert burst: N findings arriving at once at the real alert engine.

A saturated bench (sessions of a few seconds) trips ``short_sessions`` on
hundreds of chargers within seconds; each opened alert then cost the lease
holder its own transaction, and the ``csms_alerts_open`` gauge a GROUP BY over
every unresolved alert (docs/profiling.md, "Alert bursts"). This bench starts a
CSMS in this process on a fresh embedded Postgres with ``pg_stat_statements``,
opens ``--existing`` alerts first (M already unresolved), then for each N
commits N ``Faulted`` status events of N chargers in one transaction — what the
feed hands the engine as one page — and times until the engine holds all N
alerts, printing wall time and the transactions and statements Postgres ran
per alert in that window (everything the node ran: the bus reading the N
events is in it, the same for every version).

    .venv/bin/python -m bench.alert_burst [--bursts 100,500,2000] [--existing 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pg_activity import Snapshot, enable_statement_stats, snapshot
from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.events import ConnectorStatus, ConnectorStatusChanged
from csms.logs import configure_logging
from csms.storage import event_log
from csms.storage.embedded import stop_embedded

WAIT_S = 50.0


def faulted(charge_point_id: str) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id=charge_point_id,
        occurred_at=datetime.now(UTC),
        evse_id=1,
        connector_id=1,
        status=ConnectorStatus.FAULTED,
        error_code="GroundFailure",
    )


class LoopLag:
    """The longest the loop was held (a 1 ms sleeper's lateness): what chargers would wait."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            self.max_s = max(self.max_s, time.perf_counter() - asked - 0.001)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def burst(app: Csms, service: Any, prefix: str, n: int) -> tuple[float, int]:
    """Commit n Faulted events at once; seconds until the engine holds all n alerts."""
    before = len(service.lifecycle.unresolved)
    events = [faulted(f"{prefix}-{i}") for i in range(n)]
    started = time.perf_counter()
    async with app.pool.acquire() as conn, conn.transaction():
        await event_log.append_many(conn, events)
    app.bus.publish()
    deadline = started + WAIT_S
    while len(service.lifecycle.unresolved) < before + n:
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.002)
    return time.perf_counter() - started, len(service.lifecycle.unresolved) - before


def engines(query: str) -> bool:
    """A statement of the alert engine (alert rows, their events, the gauge's count)."""
    return " alerts " in f" {query} " or query.startswith("INSERT INTO events")


def per_alert(before: Snapshot, after: Snapshot, n: int) -> str:
    """Transactions (COMMIT statements: pg_stat_database's counter lags by up to a second)
    and statements per alert, the alert engine's and the whole node's."""
    calls: dict[str, int] = {}
    exec_ms: dict[str, float] = {}
    for query, (count, ms) in after.statements.items():
        was_count, was_ms = before.statements.get(query, (0, 0.0))
        if count > was_count:
            calls[" ".join(query.split())] = count - was_count
            exec_ms[" ".join(query.split())] = ms - was_ms
    commits = calls.pop("COMMIT", 0) / n
    calls.pop("BEGIN", None)
    engine = {q: c for q, c in calls.items() if engines(q)}
    shown = "\n".join(
        f"      {c / n:6.3f} {q[:90]}" for q, c in sorted(engine.items(), key=lambda kv: -kv[1])
    )
    others = sum(calls.values()) - sum(engine.values())
    engine_us = sum(ms for q, ms in exec_ms.items() if engines(q)) * 1000 / n
    all_us = sum(exec_ms.values()) * 1000 / n
    return (
        f"{commits:.3f} commits, {sum(engine.values()) / n:.3f} alert statements "
        f"(+{others / n:.2f} of the followers: history, webhooks, status history);\n"
        f"    Postgres executing the alert statements {engine_us:.0f} us, all {all_us:.0f} us:"
        f"\n{shown}"
    )


async def settled(dsn: str) -> Snapshot:
    """A snapshot once the node's followers of the burst (history, webhooks) are done too."""
    taken = await snapshot(dsn)
    for _ in range(60):
        await asyncio.sleep(0.3)
        again = await snapshot(dsn)
        grown = sum(c for c, _ in again.statements.values()) - sum(
            c for c, _ in taken.statements.values()
        )
        taken = again
        if grown < 20:  # the snapshots' own statements and the idle polls
            break
    return taken


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-alert-burst-"))
    await asyncio.to_thread(enable_statement_stats, data_dir)
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir, log_level="error",
        alerts_tick_interval=3600.0,  # no tick inside the measured windows
    )  # fmt: skip
    configure_logging(LogFormat.CONSOLE, "error")  # every opened alert logs a warning
    app = Csms(settings)
    await app.start()
    try:
        service: Any = next(s for s in app.services if s.name == "alerts")
        dsn = app.dsn
        assert dsn is not None
        if args.existing:
            took, opened = await burst(app, service, "existing", args.existing)
            await settled(dsn)
            print(f"setup: {opened} unresolved alerts opened first ({took:.2f} s)")
        for n in args.bursts:
            before = await snapshot(dsn)
            cpu = time.process_time()
            with LoopLag() as lag:
                took, opened = await burst(app, service, f"burst{n}", n)
            cpu = time.process_time() - cpu  # this process: the CSMS's loop and the bench
            after = await settled(dsn)
            counted = per_alert(before, after, n)
            unresolved = len(service.lifecycle.unresolved)
            print(
                f"N={n:5d} (M={unresolved - opened:5d} unresolved before): {opened} opened in "
                f"{took * 1000:7.1f} ms = {took * 1e6 / n:6.0f} us/alert (CSMS process CPU "
                f"{cpu * 1e6 / n:.0f} us/alert, loop held up to {lag.max_s * 1000:.0f} ms); "
                f"per alert {counted}"
            )
    finally:
        await app.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", default="100,500,2000", help="N findings per burst")
    parser.add_argument("--existing", type=int, default=1000, help="M alerts opened first")
    args = parser.parse_args()
    args.bursts = [int(x) for x in args.bursts.split(",")]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
