"""What per-site monitoring costs: the cached charger -> site map and its users.

1. Pure, in-process: the stream hub's publish with every subscriber filtering
   by site (one dict lookup per subscriber and notification), and summing the
   power of every charger per site (what a ``/metrics`` scrape does).
2. With a real CSMS (this process, fresh embedded PostgreSQL) and a fleet of
   placed chargers: one reload of the site map, ``GET /metrics`` (which
   reloads it) and ``GET /api/v1/sites/{id}/availability``.

    .venv/bin/python -m bench.monitoring_sites [--chargers 10000 --sites 50]
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

import httpx

from bench.monitoring_live import summary
from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.events import ConnectorStatus, ConnectorStatusChanged
from csms.logs import configure_logging
from csms.monitoring import metrics
from csms.monitoring.sites import SiteMap, power_by_site
from csms.monitoring.stream import StreamHub, notification_of
from csms.storage import api_keys
from csms.storage.embedded import stop_embedded


def _placements(chargers: int, sites: int) -> dict[str, str]:
    return {f"CP-{n}": f"site-{n % sites}" for n in range(chargers)}


def site_filter_cost(placements: dict[str, str], subscribers: int, events: int) -> float:
    """µs per notification through a hub whose subscribers each follow one site."""
    sites = sorted(set(placements.values()))
    hub = StreamHub(placements.get)
    for i in range(subscribers):
        hub.subscribe([], [], sites[i % len(sites)])
    ids = list(placements)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    notes = []
    for n in range(events):
        event = ConnectorStatusChanged(
            charge_point_id=ids[n % len(ids)], occurred_at=at, evse_id=1, connector_id=1,
            status=ConnectorStatus.AVAILABLE,
        )  # fmt: skip
        note = notification_of(event)
        assert note is not None
        notes.append(note)
    started = time.perf_counter()
    for note in notes:
        hub.publish(note)
        for subscriber in hub._subscribers:  # drain, as the stream tasks would
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
    return (time.perf_counter() - started) / events * 1e6


def power_sum_cost(placements: dict[str, str], runs: int) -> float:
    """ms per scrape-time sum of every charger's power into its site."""
    power = dict.fromkeys(placements, 7000.0)
    sites = frozenset(placements.values())
    started = time.perf_counter()
    for _ in range(runs):
        power_by_site(power, placements.get, sites, metrics.NO_SITE)
    return (time.perf_counter() - started) / runs * 1000


async def with_csms(placements: dict[str, str], runs: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-sites-pg-"))
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, data_dir=data_dir, log_level="warning"
    )
    configure_logging(LogFormat.CONSOLE, "warning")
    app = Csms(settings)
    await app.start()
    try:
        async with app.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO sc_sites (site_id) VALUES ($1)",
                [(s,) for s in sorted(set(placements.values()))],
            )
            await conn.executemany(
                "INSERT INTO chargers (charge_point_id) VALUES ($1)", [(c,) for c in placements]
            )
            await conn.executemany(
                "INSERT INTO sc_charger_sites (charge_point_id, site_id) VALUES ($1, $2)",
                list(placements.items()),
            )
        site_map = SiteMap(app.pool, refresh_interval=60)
        reloads = []
        for _ in range(runs):
            started = time.perf_counter()
            await site_map.refresh()
            reloads.append((time.perf_counter() - started) * 1000)
        assert len(site_map.sites) == len(set(placements.values()))
        print(summary(f"site map reload ({len(placements)} placements)", reloads))

        _, key = await api_keys.create(app.pool, "bench", "read-only")
        port = app.api_url.rsplit(":", 1)[1].split("/")[0]
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as client:
            scrapes, reports = [], []
            for _ in range(runs):
                started = time.perf_counter()
                (await client.get("/metrics")).raise_for_status()
                scrapes.append((time.perf_counter() - started) * 1000)
            per_site = len(placements) // len(set(placements.values()))
            for _ in range(runs):
                started = time.perf_counter()
                (await client.get("/api/v1/sites/site-0/availability")).raise_for_status()
                reports.append((time.perf_counter() - started) * 1000)
        print(summary("GET /metrics (reloads the site map)", scrapes))
        print(summary(f"GET /sites/{{id}}/availability ({per_site} chargers)", reports))
    finally:
        await app.stop()
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    placements = _placements(args.chargers, args.sites)
    for subscribers in (0, 10, 100):
        cost = site_filter_cost(placements, subscribers, args.events)
        print(
            f"stream publish, {subscribers} site-filtered subscribers: {cost:.2f} µs/notification"
        )
    cost = power_sum_cost(placements, args.runs)
    print(f"power per site over {args.chargers} chargers / {args.sites} sites: {cost:.2f} ms")
    await with_csms(placements, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
