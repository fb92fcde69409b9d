"""How long the dashboard's site history takes on a busy day.

Starts a CSMS in this process with a fresh embedded PostgreSQL, fills the event
log with a day of one busy site (a plan every ``--plan-every`` seconds, a few
profiles per plan) among ``--other-sites`` other sites' plans and profiles and
``--noise`` unrelated events, then times
``GET /api/v1/dashboard/sites/{id}/history?hours=24`` (the request the site page
sends every 10 s).

    .venv/bin/python -m bench.site_history
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from csms.app import Csms
from csms.config import Settings
from csms.storage import api_keys
from csms.storage.embedded import stop_embedded


async def populate(
    pool: asyncpg.Pool, plan_every: int, profiles_per_plan: int, other_sites: int, noise: int
) -> tuple[int, int]:
    """A day of plans and profiles for site BUSY and others; returns (plans, profiles) of BUSY."""
    plans = 24 * 3600 // plan_every
    async with pool.acquire() as conn, conn.transaction():
        for site in range(other_sites + 1):
            site_id = "BUSY" if site == 0 else f"S{site:03d}"
            await conn.execute(
                """
                INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
                SELECT gen_random_uuid(), 'load_plan_computed', 'site:' || $1::text,
                       now() - make_interval(secs => i * $2::float8),
                       jsonb_build_object('site_id', $1::text, 'limit_a', 63.0,
                           'allocated_a', jsonb_build_array(40 + i % 20, 40, 30),
                           'measured_a', jsonb_build_array(38 + i % 20, 39, 29))
                FROM generate_series(0, $3::int - 1) AS i
                """,
                site_id,
                float(plan_every),
                plans,
            )
            await conn.execute(
                """
                INSERT INTO events (event_id, type, charge_point_id, evse_id, occurred_at, payload)
                SELECT gen_random_uuid(), 'charging_limit_set', format('%s-CP%s', $1::text, i % 40),
                       1, now() - make_interval(secs => (i / $4::int) * $2::float8),
                       jsonb_build_object('site_id', $1::text, 'evse_id', 1, 'purpose', 'TxProfile',
                           'limit_a', 6 + i % 26, 'previous_limit_a', 16, 'status', 'Accepted',
                           'reason', 'meter_deviation', 'transaction_id', i::text)
                FROM generate_series(0, $3::int * $4::int - 1) AS i
                """,
                site_id,
                float(plan_every),
                plans,
                profiles_per_plan,
            )
        await conn.execute(
            """
            INSERT INTO events (event_id, type, charge_point_id, occurred_at, payload)
            SELECT gen_random_uuid(), 'meter_sampled', format('CP-%s', i % 500),
                   now() - make_interval(secs => i % 86400), '{}'::jsonb
            FROM generate_series(1, $1::int) AS i
            """,
            noise,
        )
        await conn.execute("ANALYZE events")
    return plans, plans * profiles_per_plan


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-site-history-"))
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=folder, alerts_enabled=False
    )
    app = Csms(settings)
    await app.start()
    try:
        started = time.perf_counter()
        plans, profiles = await populate(
            app.pool, args.plan_every, args.profiles_per_plan, args.other_sites, args.noise
        )
        total = await app.pool.fetchval("SELECT count(*) FROM events")
        print(
            f"event log: {total:,} events ({plans:,} plans and {profiles:,} profiles of the "
            f"busy site) in {time.perf_counter() - started:.1f} s"
        )
        _, key = await api_keys.create(app.pool, "bench", "read-only")
        base = f"http://127.0.0.1:{app.api_port}/api/v1"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            timings = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                answer = await client.get("/dashboard/sites/BUSY/history", params={"hours": 24})
                timings.append((time.perf_counter() - t0) * 1000)
                answer.raise_for_status()
            body = answer.json()
        print(
            f"history of 24 h: {len(body['points'])} points, {len(body['profiles'])} of "
            f"{body['profiles_total']:,} profiles listed; "
            f"median {statistics.median(timings):.0f} ms, "
            f"max {max(timings):.0f} ms over {args.repeat} requests"
        )
    finally:
        await app.stop()
        stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan-every", type=int, default=5, help="seconds between plans (5)")
    parser.add_argument("--profiles-per-plan", type=int, default=3)
    parser.add_argument("--other-sites", type=int, default=20)
    parser.add_argument("--noise", type=int, default=500_000, help="other events (500,000)")
    parser.add_argument("--repeat", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
