"""How long the dashboard's fleet overview takes with 5,000 chargers.

Starts a CSMS in this process with a fresh embedded PostgreSQL, inserts
``--chargers`` chargers (two connectors each, a mix of statuses, a tenth of
them charging, past sessions), then measures:

* the overview endpoint the page polls (``GET /api/v1/dashboard/overview``,
  counts + one page of 50), unfiltered and with a search and a status filter;
* the page in headless Chromium: from navigation to the first 50 rows and the
  counts on screen (the key is put in sessionStorage first, as after a login);
* the analytics over the last week (every session and sample falls in it),
  from the raw samples and after the background rollup (also timed).

    .venv/bin/python -m bench.dashboard_overview --chargers 5000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from csms.app import Csms
from csms.config import Settings
from csms.dashboard.rollup import roll_up
from csms.storage import api_keys
from csms.storage.embedded import stop_embedded

PENDING = """
    SELECT count(*) FROM sessions s LEFT JOIN analytics_sessions a ON a.session_id = s.id
    WHERE s.status = 'ended' AND (a.session_id IS NULL OR a.rolled_up_at < s.updated_at)
"""
STATUSES = ["Available", "Available", "Available", "Occupied", "Faulted", "Unavailable"]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync",
]  # fmt: skip


async def populate(
    pool: asyncpg.Pool, chargers: int, sessions_per_charger: int, samples_per_session: int
) -> None:
    """A fleet in one go: chargers, connectors, ended and active sessions, register samples."""
    async with pool.acquire() as conn, conn.transaction():
        # Connected chargers are held by a (synthetic) live node, or the cluster's
        # reaper would rightly mark them offline (csms.cluster.nodes).
        await conn.execute(
            "INSERT INTO nodes (node_id, host, pid, version, lease_expires_at)"
            " VALUES ('bench-fleet', 'bench', 0, 'bench', now() + interval '1 day')"
        )
        await conn.execute(
            """
            INSERT INTO chargers (charge_point_id, protocol, vendor, model, connected,
                                  last_seen_at, connected_at, node_id, connection_generation)
            SELECT format('FLEET-%s', lpad(i::text, 5, '0')),
                   CASE WHEN i % 3 = 0 THEN 'ocpp2.0.1' ELSE 'ocpp1.6' END,
                   CASE WHEN i % 2 = 0 THEN 'Acme' ELSE 'Volt' END, 'AC22',
                   i % 10 <> 0, now() - (i % 600) * interval '1 second', now(),
                   'bench-fleet', -i
            FROM generate_series(1, $1) i
            """,
            chargers,
        )
        await conn.execute(
            """
            INSERT INTO connectors (charge_point_id, evse_id, connector_id, status, status_at)
            SELECT format('FLEET-%s', lpad(i::text, 5, '0')), e, e,
                   ($2::text[])[1 + (i * 7 + e) % array_length($2::text[], 1)], now()
            FROM generate_series(1, $1) i, generate_series(1, 2) e
            """,
            chargers,
            STATUSES,
        )
        await conn.execute(
            """
            INSERT INTO sessions (charge_point_id, protocol, transaction_id, evse_id,
                connector_id, id_token, auth_status, status, started_at, ended_at,
                meter_start_wh, meter_stop_wh)
            SELECT format('FLEET-%s', lpad(i::text, 5, '0')), 'ocpp1.6', format('%s-%s', i, n),
                   1 + n % 2, 1 + n % 2, 'TAG', 'Accepted',
                   CASE WHEN n = $2 AND i % 10 = 1 THEN 'active' ELSE 'ended' END,
                   now() - (n + 1) * interval '3 hours',
                   CASE WHEN n = $2 AND i % 10 = 1 THEN NULL
                        ELSE now() - (n + 1) * interval '3 hours' + interval '90 minutes' END,
                   0, CASE WHEN n = $2 AND i % 10 = 1 THEN NULL ELSE 20000 END
            FROM generate_series(1, $1) i, generate_series(1, $2) n
            """,
            chargers,
            sessions_per_charger,
        )
        # Register readings evenly through each ended session (90 minutes, 20 kWh).
        await conn.execute(
            """
            INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
                                       sampled_at, measurand, value, unit, location)
            SELECT s.charge_point_id, s.id, s.evse_id, s.connector_id,
                   s.started_at + k * interval '90 minutes' / ($1 + 1),
                   'Energy.Active.Import.Register', k * 20000.0 / ($1 + 1), 'Wh', 'Outlet'
            FROM sessions s, generate_series(1, $1) k
            WHERE s.status = 'ended'
            """,
            samples_per_session,
        )
        await conn.execute("ANALYZE")


def summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{label:<44} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


async def time_endpoint(
    client: httpx.AsyncClient, params: dict[str, str], runs: int
) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await client.get("/api/v1/dashboard/overview", params=params)
        timings.append(time.perf_counter() - started)
        answer.raise_for_status()
    return timings


async def time_get(
    client: httpx.AsyncClient, path: str, params: dict[str, str], runs: int
) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await client.get(path, params=params, timeout=120)
        timings.append(time.perf_counter() - started)
        answer.raise_for_status()
    return timings


async def time_page(url: str, key: str, chargers: int, runs: int, chromium: str) -> list[float]:
    from playwright.async_api import async_playwright

    timings = []
    profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            await browser.add_init_script(f"sessionStorage.setItem('csms.apiKey', '{key}')")
            for _ in range(runs):
                page = await browser.new_page()
                started = time.perf_counter()
                await page.goto(url)
                await page.wait_for_selector("tr[data-charger] >> nth=49")
                await page.wait_for_function(
                    f"document.querySelector('[data-testid=count-chargers]')?.textContent === "
                    f"'{chargers}'"
                )
                timings.append(time.perf_counter() - started)
                await page.close()
            await browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=5000)
    parser.add_argument("--sessions-per-charger", type=int, default=20)
    parser.add_argument(
        "--samples", type=int, default=17, help="register samples per session (every 5 min)"
    )
    parser.add_argument("--runs", type=int, default=50, help="requests per endpoint variant")
    parser.add_argument("--analytics-runs", type=int, default=5)
    parser.add_argument("--page-runs", type=int, default=10, help="page loads in Chromium")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-dashboard-pg-"))
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir, log_level="warning"
    )
    app = Csms(settings)
    await app.start()
    try:
        started = time.perf_counter()
        await populate(app.pool, args.chargers, args.sessions_per_charger, args.samples)
        samples = await app.pool.fetchval("SELECT count(*) FROM meter_samples")
        print(
            f"{args.chargers} chargers, {2 * args.chargers} connectors, "
            f"{args.chargers * args.sessions_per_charger} sessions, {samples} meter samples "
            f"inserted in {time.perf_counter() - started:.1f} s"
        )
        _, key = await api_keys.create(app.pool, "bench", "read-only")
        port = app.api_url.rsplit(":", 1)[1].split("/")[0]
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            await time_endpoint(client, {}, 5)  # warm the pool and the plans
            for label, params in [
                ("overview API, first page of 50", {}),
                ("overview API, page 60 (offset 2950)", {"offset": "2950"}),
                ("overview API, search 'Acme'", {"q": "Acme"}),
                ("overview API, connector status Faulted", {"connector_status": "Faulted"}),
            ]:
                print(summary(label, await time_endpoint(client, params, args.runs)))
            today = datetime.now(UTC).date()
            week = {"from": str(today - timedelta(days=6)), "to": str(today)}
            raw = await time_get(client, "/api/v1/analytics/fleet", week, 1)
            print(summary("analytics fleet, 7 days per day, raw samples", raw))
            # The dashboard service has been rolling up since start-up; help it finish.
            started = time.perf_counter()
            async with app.pool.acquire() as conn:
                while await conn.fetchval(PENDING) > 0:
                    if not await roll_up(conn, 2000):
                        await asyncio.sleep(0.2)  # the service holds the rollup lock
            print(f"rollup finished {time.perf_counter() - started:.1f} s after the raw query")
            for label, path, params in [
                ("analytics fleet, 7 days per day", "/api/v1/analytics/fleet", week),
                (
                    "analytics fleet, 7 days per hour",
                    "/api/v1/analytics/fleet",
                    {**week, "bucket": "hour"},
                ),
                ("analytics per charger, 7 days", "/api/v1/analytics/chargers", week),
            ]:
                print(summary(label, await time_get(client, path, params, args.analytics_runs)))
        if args.page_runs:
            timings = await time_page(f"{base}/", key, args.chargers, args.page_runs, args.chromium)
            print(summary("page load to 50 rows + counts (Chromium)", timings))
    finally:
        await app.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
