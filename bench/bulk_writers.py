"""CPU of group commit's meter-value bulk writer, on the CSMS's side and on Postgres's.

    python -m bench.bulk_writers [--batches 300] [--batch 40] [--samples 8]

Starts an embedded Postgres in a temporary folder (migrated like the CSMS's),
then writes ``--batches`` batches of ``--batch`` 1.6 meter values (``--samples``
samples each, as bench.ocpp_load's: energy, power, three currents, three
voltages) with :data:`csms.storage.batched_writes.METER_SAMPLED`, one
transaction each, and prints per message: this process's CPU (asyncpg's
encoding of the arguments, the statement's round trip) and the Postgres
backend's CPU (from ``/proc``). What the message path costs before the write
is ``bench.message_path``'s. Run it with another checkout's interpreter from a
folder outside this one to measure that checkout's writer (it imports ``csms``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from csms.events import MeterSample, MeterSampled, RegistrationStatus
from csms.storage import batched_writes, chargers
from csms.storage.embedded import start_embedded, stop_embedded
from csms.storage.migrate import migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_TICKS = os.sysconf("SC_CLK_TCK")


def _samples(at: datetime, wh: float, count: int) -> tuple[MeterSample, ...]:
    kinds = [
        ("Energy.Active.Import.Register", wh, "Wh", None),
        ("Power.Active.Import", 7200.0, "W", None),
        *[("Current.Import", 10.4, "A", phase) for phase in ("L1", "L2", "L3")],
        *[("Voltage", 230.1, "V", phase) for phase in ("L1-N", "L2-N", "L3-N")],
    ]
    return tuple(
        MeterSample(at, measurand, value, unit, phase, "Sample.Periodic", "Outlet")
        for measurand, value, unit, phase in (kinds * (count // len(kinds) + 1))[:count]
    )


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


async def _run(dsn: str, batches: int, batch: int, samples: int) -> tuple[float, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        ids = [f"BULK-{n}" for n in range(batch)]
        for cp in ids:
            await chargers.register(conn, cp, RegistrationStatus.ACCEPTED)
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))

        async def write(number: int) -> None:
            at = T0 + timedelta(seconds=number)
            events = [
                MeterSampled(
                    charge_point_id=cp,
                    occurred_at=at,
                    evse_id=1,
                    connector_id=1,
                    transaction_id=None,
                    samples=_samples(at, 1000.0 + number, samples),
                )
                for cp in ids
            ]
            async with conn.transaction():
                await batched_writes.METER_SAMPLED(conn, events)

        for number in range(20):  # warm: the prepared statement, caches
            await write(number)
        own, server = time.process_time(), _backend_cpu(backend)
        for number in range(20, 20 + batches):
            await write(number)
        own, server = time.process_time() - own, _backend_cpu(backend) - server
        messages = batches * batch
        return own / messages * 1e6, server / messages * 1e6
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=40, help="meter values per batch")
    parser.add_argument("--samples", type=int, default=8, help="samples per meter value")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    folder = Path(tempfile.mkdtemp(prefix="csms-bulk-bench-"))
    os.chmod(folder, 0o755)  # as root the server runs as another user
    try:
        dsn = asyncio.run(start_embedded(folder))
        own, server = asyncio.run(_run(dsn, args.batches, args.batch, args.samples))
        print(
            f"meter values, {args.batch} per batch, {args.samples} samples each: "
            f"this process {own:.1f} us, Postgres {server:.1f} us CPU per message"
        )
    finally:
        stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
