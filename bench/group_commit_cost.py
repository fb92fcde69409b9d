"""What a group-commit batch costs per message: round trips and CPU, CSMS and Postgres.

    python -m bench.group_commit_cost [--sizes 1,4,16] [--seconds 5] [--kind update]

A fresh embedded Postgres (migrated) and a :class:`~csms.central.CentralSystem` in
this process, nothing else: no sockets, no fleet, no services. Chargers (2.0.1, a
session each) send their messages in rounds: each round every one of ``size``
chargers submits one message at once, so group commit writes them as one batch per
lane (``--kind update``: a TransactionEvent Updated with 8 samples, the fleet's
periodic meter value; ``meter``: a 1.6 MeterValues of 8 samples inside a
transaction; ``mixed``: half each; ``end``: a TransactionEvent Ended with 8 samples,
billing's CDR made by its session-end hook, each charger's session started by a
round of its own that is not measured). Prints per message: statements sent (BEGIN and
COMMIT counted, asyncpg's query logger), batches, this process's CPU and the CPU
of all Postgres processes. Figures for a bench, not a fleet: a batch's fixed cost
(round trips, its commit) against its per-message cost, with the machine's other
work left out as far as CPU times do.

Compare two versions by running this file with the other checkout's interpreter
from a folder outside this checkout (``cd /tmp && <other>/.venv/bin/python
<this>/bench/group_commit_cost.py``): it then imports that checkout's ``csms``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from csms.central import CentralSystem
from csms.config import Settings
from csms.events import (
    MeterSample,
    MeterSampled,
    Protocol,
    RegistrationStatus,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.storage import chargers
from csms.storage.embedded import pgdata_of, postmaster_pid, start_embedded, stop_embedded
from csms.storage.migrate import migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def samples(at: datetime, wh: float) -> tuple[MeterSample, ...]:
    """The fleet's eight: register, power, current and voltage per phase."""
    phases = ("L1", "L2", "L3")
    return (
        MeterSample(at, "Energy.Active.Import.Register", wh, "Wh"),
        MeterSample(at, "Power.Active.Import", 11000.0, "W"),
        *(MeterSample(at, "Current.Import", 16.0, "A", phase=p) for p in phases),
        *(MeterSample(at, "Voltage", 230.0, "V", phase=f"{p}-N") for p in phases),
    )


def message(kind: str, cp: str, n: int) -> SessionUpdated | MeterSampled:
    at = T0 + timedelta(seconds=n)
    if kind == "meter":
        return MeterSampled(
            charge_point_id=cp,
            occurred_at=at,
            evse_id=1,
            connector_id=1,
            transaction_id="TX-1",
            samples=samples(at, 100.0 + n),
        )
    return SessionUpdated(
        charge_point_id=cp,
        occurred_at=at,
        transaction_id="TX-1",
        seq_no=n,
        trigger_reason="MeterValuePeriodic",
        charging_state="Charging",
        samples=samples(at, 100.0 + n),
    )


def started(cp: str, tx: str, at: datetime) -> SessionStarted:
    return SessionStarted(
        charge_point_id=cp,
        transaction_id=tx,
        occurred_at=at,
        evse_id=1,
        connector_id=1,
        id_token=None,
        seq_no=0,
        samples=samples(at, 100.0),
    )


def ended(cp: str, tx: str, at: datetime) -> SessionEnded:
    return SessionEnded(
        charge_point_id=cp,
        transaction_id=tx,
        occurred_at=at,
        evse_id=1,
        connector_id=1,
        stop_reason="EVDisconnected",
        trigger_reason="EVCommunicationLost",
        seq_no=1,
        samples=samples(at, 5100.0),
    )


async def billing_hook(conn: Any, session_id: int, event: SessionEnded) -> None:
    """Billing's CDR at session end (its service's hook, without the service)."""
    from billing.cdrs import create_cdr

    await create_cdr(conn, session_id, event.occurred_at, "EUR", Decimal(11000))


def postgres_cpu(data_dir: Path) -> float:
    """CPU seconds so far of the postmaster and its children (backends, WAL writer...)."""
    pid = postmaster_pid(pgdata_of(data_dir))
    if pid is None:
        return float("nan")
    total = 0.0
    root = psutil.Process(pid)
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


async def next_round(
    central: CentralSystem, kind: str, cps: list[str], n: int, sent: list[int]
) -> list[Awaitable[object]]:
    """The round's messages, one per charger (for ``end``: their sessions started first,
    unmeasured and uncounted)."""
    if kind == "end":
        at = T0 + timedelta(hours=n)
        counted = sent[0]
        await asyncio.gather(
            *(central.start_session(started(cp, f"TX-R{n}", at), Protocol.V201) for cp in cps)
        )
        sent[0] = counted
        return [
            central.end_session(ended(cp, f"TX-R{n}", at + timedelta(minutes=30)), Protocol.V201)
            for cp in cps
        ]
    round_: list[Awaitable[object]] = []
    for i, cp in enumerate(cps):
        event = message(kind if kind != "mixed" else ("meter", "update")[i % 2], cp, n)
        if isinstance(event, MeterSampled):
            round_.append(central.record(event))
        else:
            round_.append(central.update_session(event, Protocol.V201))
    return round_


async def measure(args: argparse.Namespace, dsn: str, data_dir: Path) -> None:
    sent = [0]

    def count(_record: Any) -> None:
        sent[0] += 1

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(count)

    async def no_reset(_conn: asyncpg.Connection) -> None:
        return None  # as the CSMS's pool (csms.storage.database): no reset round trip

    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=10, init=init, reset=no_reset)
    assert pool is not None
    settings = dataclasses.replace(Settings(), database_url=dsn)
    central = CentralSystem(pool, settings)
    committer = central.group_commit
    assert committer is not None
    print(
        f"kind {args.kind}; window {settings.group_commit_window_ms} ms, "
        f"{len(committer._lanes)} lanes; {args.seconds:g} s per size"
    )
    fleet = [f"CP-GC-{i}" for i in range(max(args.sizes))]
    for cp in fleet:
        await chargers.register(pool, cp, RegistrationStatus.ACCEPTED)
        await central.start_session(started(cp, "TX-1", T0), Protocol.V201)
    if args.kind == "end":
        central.session_end_hooks.append(billing_hook)
    n = 0
    try:
        for size in args.sizes:
            cps = fleet[:size]
            messages = batches = 0
            sent[0] = 0
            cpu = pg = 0.0
            until = time.monotonic() + args.seconds
            while time.monotonic() < until:
                n += 1
                round_ = await next_round(central, args.kind, cps, n, sent)
                # Postgres's CPU read outside this process's measured span (psutil's scan)
                pg0, batches0 = postgres_cpu(data_dir), committer.batches
                cpu0 = time.process_time()
                await asyncio.gather(*round_)
                cpu += time.process_time() - cpu0
                pg += postgres_cpu(data_dir) - pg0
                batches += committer.batches - batches0
                messages += size
            print(
                f"size {size:3d}: {messages / args.seconds:6.0f} messages/s, "
                f"{messages / max(1, batches):5.1f} per batch; per message: "
                f"{sent[0] / messages:5.2f} statements, CSMS {cpu / messages * 1e6:5.0f} us, "
                f"Postgres {pg / messages * 1e6:5.0f} us"
            )
    finally:
        await pool.close()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="csms-gc-cost-") as tmp:
        data_dir = Path(tmp)
        dsn = await start_embedded(data_dir)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            await measure(args, dsn, data_dir)
        finally:
            await asyncio.to_thread(stop_embedded, data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured s per size")
    parser.add_argument("--kind", choices=("update", "meter", "mixed", "end"), default="update")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
