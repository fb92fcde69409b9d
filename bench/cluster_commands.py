"""Cross-node command round trip, and how fast a dead node's chargers are shown offline.

Two CSMS nodes in this process on a fresh embedded PostgreSQL; ``--chargers``
1.6 chargers (the ``ocpp`` library's, answering DataTransfer) connected to
node B. Prints p50/p99 of ``CommandRouter.call``:

* local: node B's router to its own charger (the socket is in its registry);
* forwarded: node A's router to a charger on node B (cluster_commands row +
  NOTIFY, claimed and sent by B, answer stored and NOTIFYed back to A),
  one call at a time, then ``--concurrency`` calls in flight.

Then node B stops renewing its lease (as if killed) and the time until node
A has marked all its chargers offline is printed (expected: between the lease
and lease + lease/3).

Both nodes share this process's event loop, so the forwarded figure includes
both nodes' work on one core. Loopback only, bounded to well under a minute.

    .venv/bin/python -m bench.cluster_commands --chargers 20 --calls 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ocpp.v16.call
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from websockets.asyncio.client import connect

from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.logs import configure_logging
from csms.storage.embedded import start_embedded, stop_embedded


class Answering(ChargePoint):  # type: ignore[misc]
    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **fields: Any) -> Any:
        return call_result.DataTransfer(status="Accepted", data=fields.get("data"))


@contextlib.asynccontextmanager
async def chargers(url: str, count: int) -> AsyncIterator[list[str]]:
    ids = [f"RTT-{i:04d}" for i in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        tasks = []
        for cp_id in ids:
            ws = await stack.enter_async_context(
                connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
            )
            tasks.append(asyncio.create_task(Answering(cp_id, ws).start()))
        try:
            yield ids
        finally:
            for task in tasks:
                task.cancel()


def percentiles(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label}: n={len(samples)} p50={statistics.median(ordered):.2f} ms "
        f"p99={p99:.2f} ms max={ordered[-1]:.2f} ms"
    )


async def timed_calls(app: Csms, ids: list[str], calls: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            started = time.perf_counter()
            answer = await app.router.call(
                ids[i % len(ids)], ocpp.v16.call.DataTransfer(vendor_id="bench", data=str(i))
            )
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.data == str(i)

    await asyncio.gather(*(one(i) for i in range(calls)))
    return samples


async def until(app: Csms, done: Callable[[int], bool], within: float = 50.0) -> None:
    """Poll how many chargers node B holds until ``done`` says so."""
    for _ in range(int(within / 0.05)):
        held = await app.pool.fetchval(
            "SELECT count(*) FROM chargers WHERE connected AND node_id = 'bench-b'"
        )
        if done(held):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the cluster did not settle")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--lease", type=float, default=15.0, help="node lease, seconds")
    parser.add_argument("--pool", type=int, default=10, help="database pool size per node")
    args = parser.parse_args()

    configure_logging(LogFormat.CONSOLE, "warning")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-pg-"))
    dsn = await start_embedded(data_dir)
    base = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, database_url=dsn,
        log_level="warning", node_lease_seconds=args.lease, db_pool_max=args.pool,
    )  # fmt: skip
    a = Csms(dataclasses.replace(base, node_id="bench-a"))
    b = Csms(dataclasses.replace(base, node_id="bench-b", migrate_on_start=False))
    try:
        await a.start()
        await b.start()
        async with chargers(f"{b.ocpp_url}", args.chargers) as ids:
            await until(a, lambda held: held == len(ids))
            await timed_calls(a, ids, 20, 1)  # warm up both paths
            await timed_calls(b, ids, 20, 1)
            print(
                percentiles(
                    "local call (B -> its charger)", await timed_calls(b, ids, args.calls, 1)
                )
            )
            print(percentiles("forwarded call (A -> charger on B), 1 in flight",
                              await timed_calls(a, ids, args.calls, 1)))  # fmt: skip
            print(percentiles(f"forwarded call, {args.concurrency} in flight",
                              await timed_calls(a, ids, args.calls, args.concurrency)))  # fmt: skip

            for task in b._tasks:  # B stops renewing: to the cluster it is dead
                if "NodeMembership.run" in task.get_coro().__qualname__:  # type: ignore[union-attr]
                    task.cancel()
            renewed = await a.pool.fetchval(
                "SELECT renewed_at FROM nodes WHERE node_id = 'bench-b'"
            )
            started = time.perf_counter()
            await until(a, lambda held: held == 0)
            lag = await a.pool.fetchval("SELECT extract(epoch FROM now() - $1)::float8", renewed)
            print(
                f"dead node (lease {args.lease:g} s): its {len(ids)} chargers offline "
                f"{lag:.1f} s after its last renewal (waited {time.perf_counter() - started:.1f} s)"
            )
    finally:
        await b.stop()
        await a.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
