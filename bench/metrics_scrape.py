"""What a scrape of ``GET /metrics`` costs the CSMS, with chargers connected (docs/workers.md).

    python -m bench.metrics_scrape [--chargers 1000] [--workers 2] [--scrapes 40]
                                   [--csms-python PATH]

Starts ``csms --workers N`` (fresh embedded Postgres, bench.load_targets), connects
``--chargers`` strict chargers (bench.load_client: they boot, then only heartbeat),
then measures, over the same length of time, the CPU of the CSMS's processes
(supervisor and workers, not Postgres) while it is left idle and while it is
scraped ``--scrapes`` times one after the other, each on a new connection (so the
kernel picks a worker each time). It prints the CPU and the wall time per scrape,
the size of the answer and what the answers said about the host: whether every
scrape counted every charger (``csms_chargers_connected`` summed).
``--csms-python`` runs another checkout's csms (e.g. one scrape per worker before
the workers' metrics were merged).

On a busy machine the CPU of the whole CSMS moves with everything else it does, so
the merge itself is also timed alone: the bench chooses the workers' metrics
directory (``PROMETHEUS_MULTIPROC_DIR``) and, at the end, merges those files as a
scrape does, in its own process (CPU time, best of five rounds of 20).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bench.load_generators import Generators
from bench.load_targets import Target, start_csms

SETTLE_S = 3.0  # after the fleet booted: the CSMS's post-boot probes, no scrapes yet


def _connected(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "csms_chargers_connected"
    )


async def _scrape_all(url: str, scrapes: int) -> tuple[list[float], list[float], int]:
    """(wall ms of each scrape, chargers each counted, bytes of the last answer)."""
    took: list[float] = []
    counted: list[float] = []
    size = 0
    for _ in range(scrapes):
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=30) as http:  # a new connection each time
            answer = await http.get(url)
        took.append((time.perf_counter() - started) * 1e3)
        answer.raise_for_status()
        counted.append(_connected(answer.text))
        size = len(answer.content)
    return took, counted, size


def _merge_cost(files: Path) -> tuple[float, int]:
    """(CPU ms to merge the files into the text format, how many files); best of five."""
    count = len(list(files.glob("*.db")))
    if not count:
        return math.nan, 0
    best = math.inf
    for _ in range(5):
        started = time.process_time()
        for _ in range(20):
            registry = CollectorRegistry()
            MultiProcessCollector(registry, str(files))  # type: ignore[no-untyped-call]
            generate_latest(registry)
        best = min(best, (time.process_time() - started) / 20 * 1e3)
    return best, count


async def _cpu_over(target: Target, seconds: float) -> float:
    before = target.cpu_seconds()[0]
    await asyncio.sleep(seconds)
    return target.cpu_seconds()[0] - before


async def run(args: argparse.Namespace) -> int:
    generators = Generators(args.chargers, 1, 30.0)
    with tempfile.TemporaryDirectory(prefix="csms-scrape-") as tmp:
        files = Path(tmp) / "metrics"
        files.mkdir()
        target = await start_csms(
            Path(tmp),
            args.workers,
            args.csms_python,
            env={"CSMS_POST_BOOT_SPREAD_SECONDS": "1", "PROMETHEUS_MULTIPROC_DIR": str(files)},
        )
        try:
            opened, failed, took = await generators.open("csms", target.url, None, 1)
            await asyncio.sleep(SETTLE_S)
            assert target.api_url is not None
            url = target.api_url.removesuffix("/").removesuffix("/api/v1") + "/metrics"
            await _scrape_all(url, 3)  # first-scrape work (imports, caches) out of the figures
            cpu_before = target.cpu_seconds()[0]
            started = time.monotonic()
            times, counted, size = await _scrape_all(url, args.scrapes)
            window = time.monotonic() - started
            cpu_scraped = target.cpu_seconds()[0] - cpu_before
            cpu_idle = await _cpu_over(target, window)
            merge_ms, file_count = _merge_cost(files)
            await generators.close_fleet("csms")
        finally:
            generators.stop()
            await target.stop()
    times.sort()
    per_scrape_ms = (cpu_scraped - cpu_idle) / args.scrapes * 1e3
    print(
        f"csms --workers {args.workers}, chargers: {opened} ({failed} failed, {took:.1f} s to "
        f"set up); {args.scrapes} scrapes in {window:.1f} s, answer {size / 1024:.1f} KiB"
    )
    print(
        f"CSMS CPU per scrape: {per_scrape_ms:.1f} ms (scraped {cpu_scraped * 1e3:.0f} ms, idle "
        f"{cpu_idle * 1e3:.0f} ms over the same {window:.1f} s)"
    )
    if file_count:
        print(f"merging the workers' {file_count} metric files alone: {merge_ms:.2f} ms CPU")
    print(
        f"wall per scrape: p50 {times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms; "
        f"chargers counted per scrape: min {min(counted):.0f}, max {max(counted):.0f} "
        f"(of {opened})"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument("--csms-python", help="run csms with this interpreter (another checkout)")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
