"""Connections benchmark: memory of idle chargers, and a reconnect storm.

    python -m bench.connections [--chargers 10000] [--workers N] [--generators 4]
        [--heartbeat 30] [--idle-seconds 15] [--connect-rate 1500] [--phase both]
        [--client-compression] [--toy] [--url ws://host:port/ocpp]

Without ``--url`` it starts ``csms`` (``--workers N`` if given) with a fresh
embedded Postgres in a temporary folder, as bench.ingest does. The fleet (half
1.6J, half 2.0.1; bench.connection_fleet) is spread over ``--generators``
processes, so the load generator is not the bottleneck of one interpreter.

1. IDLE: the chargers connect (at most ``--connect-rate`` new sockets a second
   in all), boot and heartbeat every ``--heartbeat`` s; after ``--idle-seconds``
   it prints the RSS of every CSMS process together (supervisor and workers;
   Postgres separately), the memory per connection ((RSS at N - RSS at 0) / N)
   and the event-loop lag metrics (``csms_event_loop_lag_*`` on /metrics, "n/a"
   where the CSMS does not have them).
2. STORM: every charger closes its socket; once the CSMS shows them all
   disconnected, all reconnect and boot at once. It prints the time until all
   are Accepted, connect-to-Accepted and BootNotification latency p50/p99,
   rejected boots and connection errors -- and, meanwhile, the round trip of a
   Heartbeat sent every 100 ms by one charger that stayed connected (max, p99).

With each connect it prints the CPU seconds the CSMS and Postgres used, and per
charger accepted: on a machine shared with other work the wall-clock figures
move with the load, the CPU per charger much less, so that one compares
versions.

``--toy`` runs the same against the in-memory yardstick (``bench.toy_csms``)
instead of the CSMS, for a comparison figure. Loopback only; every wait bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from typing import Any

from bench.connection_fleet import generator_main
from bench.connection_target import Target, until
from bench.heartbeat_probe import HeartbeatProbe, percentile

MiB = 1024 * 1024


class Generators:
    """The fleet, split over processes; each is driven through a pipe."""

    def __init__(
        self, url: str, chargers: int, processes: int, heartbeat: float, compression: bool
    ) -> None:
        context = multiprocessing.get_context("spawn")
        ids = [f"CONN-{n:05d}" for n in range(chargers)]
        self.pipes = []
        self.processes = []
        for index in range(processes):
            parent, child = context.Pipe()
            process = context.Process(
                target=generator_main,
                args=(child, url, ids[index::processes], heartbeat, compression),
                name=f"bench-generator-{index}",
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    async def ask(self, *command: Any) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return list(await asyncio.gather(*(asyncio.to_thread(p.recv) for p in self.pipes)))

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.ask("stop"), 30)
        except (TimeoutError, EOFError, OSError):
            pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def _summarise(results: list[list[dict[str, Any]]], began: float) -> dict[str, Any]:
    outcomes = [o for batch in results for o in batch]
    accepted = [o for o in outcomes if o["accepted_at"] is not None]
    errors: dict[str, int] = {}
    for o in outcomes:
        for name, n in o["errors"].items():
            errors[name] = errors.get(name, 0) + n
    return {
        "accepted": len(accepted),
        "total": len(outcomes),
        "all_accepted_s": max((o["accepted_at"] for o in accepted), default=began) - began,
        "connect": [o["connect_seconds"] for o in accepted],
        "boot": [o["boot_rtt"] for o in accepted],
        "rejected": sum(o["rejected"] for o in outcomes),
        "retries": sum(o["attempts"] - 1 for o in outcomes),
        "errors": errors,
    }


def _cpu_per_charger(target: Target, before: tuple[float, float], chargers: int) -> str:
    own, pg = target.cpu_seconds()
    used, pg_used = own - before[0], pg - before[1]
    per = f"; per charger {used / chargers * 1000:.1f} ms + {pg_used / chargers * 1000:.1f} ms"
    return f"CPU used: CSMS {used:.1f} s, Postgres {pg_used:.1f} s" + (per if chargers else "")


def _latencies(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (
        f"{name}: p50 {percentile(values, 50):.2f} s  p99 {percentile(values, 99):.2f} s  "
        f"max {max(values):.2f} s"
    )


async def _report_rss(target: Target, label: str, baseline: int, chargers: int) -> int:
    own, count, pg = target.rss()
    line = f"{label}: CSMS RSS {own / MiB:.0f} MiB ({count} processes)"
    if chargers:
        line += f", per connection {(own - baseline) / chargers / 1024:.1f} KiB"
    if pg:
        line += f"; Postgres {pg / MiB:.0f} MiB"
    print(line, flush=True)
    return own


async def run(args: argparse.Namespace, target: Target) -> None:
    await asyncio.sleep(2)  # start-up settles (services, first scans)
    baseline = await _report_rss(target, "idle, 0 chargers", 0, 0)
    probe = HeartbeatProbe(target.url, "CONN-PROBE")
    await probe.start()
    fleet = Generators(
        target.url, args.chargers, args.generators, args.heartbeat, args.client_compression
    )
    try:
        print(f"chargers: {args.chargers} (half 1.6J, half 2.0.1) over {args.generators} "
              f"generator processes; heartbeat every {args.heartbeat:g} s", flush=True)  # fmt: skip
        rate = args.connect_rate / args.generators
        began = time.time()
        probe.mark()
        cpu = target.cpu_seconds()
        first = _summarise(await fleet.ask("connect", rate, args.timeout), began)
        print(f"connect at {args.connect_rate:g}/s: {first['accepted']}/{first['total']} "
              f"Accepted in {first['all_accepted_s']:.1f} s; retries {first['retries']}, "
              f"errors {first['errors'] or 0}", flush=True)  # fmt: skip
        print(f"  heartbeat round trip meanwhile: {probe.summary()}", flush=True)
        print(f"  {_cpu_per_charger(target, cpu, first['accepted'])}", flush=True)
        if args.phase in ("idle", "both"):
            probe.mark()
            await asyncio.sleep(args.idle_seconds)
            await _report_rss(target, f"idle, {first['accepted']} chargers", baseline,
                              first["accepted"])  # fmt: skip
            print(f"  event-loop lag: {await target.lag_metrics()}", flush=True)
            print(f"  heartbeat round trip (idle): {probe.summary()}", flush=True)
        if args.phase in ("storm", "both"):
            await fleet.ask("close")
            if target.dsn is not None:
                settled = await until(lambda: _only_probe(target), args.timeout)
                print(f"storm: all disconnected (recorded) {settled:.1f} s after the close")
            await asyncio.sleep(1)
            probe.mark()
            began = time.time()
            cpu = target.cpu_seconds()
            storm = _summarise(await fleet.ask("connect", 0, args.timeout), began)
            print(f"storm: {storm['accepted']}/{storm['total']} Accepted in "
                  f"{storm['all_accepted_s']:.1f} s; rejected boots {storm['rejected']}, "
                  f"retries {storm['retries']}, errors {storm['errors'] or 0}",
                  flush=True)  # fmt: skip
            print("  " + _latencies("connect to Accepted", storm["connect"]))
            print("  " + _latencies("BootNotification round trip", storm["boot"]))
            print(f"  heartbeat round trip during the storm: {probe.summary()}", flush=True)
            print(f"  {_cpu_per_charger(target, cpu, storm['accepted'])}", flush=True)
            await _report_rss(target, "after the storm", baseline, storm["accepted"])
            print(f"  event-loop lag: {await target.lag_metrics()}", flush=True)
    finally:
        await fleet.stop()
        await probe.stop()
        print(f"CSMS log (errors and warnings): {target.log_summary()}", flush=True)


async def _only_probe(target: Target) -> bool:
    return (await target.connected() or 0) <= 1


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="csms --workers N")
    parser.add_argument("--generators", type=int, default=4, help="fleet processes")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between beats")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--connect-rate", type=float, default=1500.0, help="sockets/s (idle)")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound of every wait, s")
    parser.add_argument("--phase", choices=("idle", "storm", "both"), default="both")
    parser.add_argument(
        "--client-compression",
        action="store_true",
        help="chargers offer permessage-deflate (the CSMS accepts it only with "
        "CSMS_WS_COMPRESSION=true)",
    )
    parser.add_argument("--toy", action="store_true", help="against bench.toy_csms instead")
    parser.add_argument("--url", help="an already running CSMS (RSS is then not measured)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csms-bench-conn-") as tmp:
        target = Target()
        try:
            if args.url:
                target.url = args.url
            elif args.toy:
                await target.start_toy()
            else:
                await target.start_csms(tmp, args.workers)
            await run(args, target)
        finally:
            await target.stop()


if __name__ == "__main__":
    asyncio.run(main())
