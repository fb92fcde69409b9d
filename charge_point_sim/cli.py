"""``csms-sim``: run a simulated charger fleet against a CSMS and print a summary.

Times on the command line are *simulated* seconds; ``--speed`` sets how many
simulated seconds pass per real second (timestamps sent to the CSMS follow
the simulated clock, see :mod:`charge_point_sim.clock`).

With no flags, ``csms-sim --chargers 50`` simulates one hour at 60x speed, so
it ends by itself after about a minute of real time, with EVs arriving at
every connector about once an hour (``--arrival-rate``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict

from charge_point_sim.fleet import Fleet, FleetConfig
from charge_point_sim.scenario import FAULT_KINDS, load_schedule, parse_fault
from charge_point_sim.stats import Summary

DEFAULT_DURATION = 3600.0
"""Simulated seconds of a run without --duration / --sessions (one hour)."""
DEFAULT_SPEED = 60.0
"""Simulated seconds per real second by default: the default hour takes a real minute."""


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (exposed for tests and --help docs)."""
    p = argparse.ArgumentParser(
        prog="csms-sim", description="Simulate OCPP 1.6J / 2.0.1 chargers against a CSMS."
    )
    p.add_argument("--url", default="ws://127.0.0.1:9000/ocpp", help="CSMS OCPP base URL")
    p.add_argument("--chargers", type=int, default=1, help="number of chargers")
    p.add_argument("--connectors", type=int, default=2, help="connectors (EVSEs) per charger")
    p.add_argument(
        "--v201-share", type=float, default=0.5, help="fraction of chargers speaking OCPP 2.0.1"
    )
    p.add_argument("--password", help="HTTP Basic-Auth password (username = charger id)")
    p.add_argument("--seed", type=int, default=1, help="seed for reproducible runs")
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"simulated seconds per real second (default {DEFAULT_SPEED:g})",
    )
    p.add_argument(
        "--duration",
        type=float,
        help=f"stop after this many simulated seconds (default {DEFAULT_DURATION:g} unless "
        "--sessions is given; 0 = no time limit)",
    )
    p.add_argument("--sessions", type=int, help="stop after this many completed sessions")
    p.add_argument(
        "--arrival-rate",
        type=float,
        default=1.0,
        help="Poisson arrivals per connector per simulated hour (0 = off)",
    )
    p.add_argument("--schedule", help="JSON file with scheduled arrivals")
    p.add_argument("--id-tag", action="append", dest="id_tags", help="id tag to use (repeatable)")
    p.add_argument("--dwell", type=float, default=4 * 3600.0, help="mean plug-in time (s)")
    p.add_argument("--meter-interval", type=int, default=60, help="MeterValueSampleInterval (s)")
    p.add_argument("--heartbeat", type=int, default=300, help="heartbeat until Boot says (s)")
    p.add_argument("--max-power", type=float, default=22_000.0, help="charger max power (W)")
    p.add_argument("--id-prefix", default="SIM-", help="charger id prefix")
    p.add_argument(
        "--rate-units",
        choices=["A", "W", "A,W"],
        default="A,W",
        help="units the chargers' charging schedules take (W: a W-only charger)",
    )
    p.add_argument(
        "--cost-updates",
        action="store_true",
        help="2.0.1 chargers show a running cost and take CostUpdated (default: NotImplemented)",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@T[:k=v,...]",
        help=f"inject a fault; KIND one of {', '.join(FAULT_KINDS)}; "
        "keys: charger, connector, duration, code, factor, fraction",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--verbose", action="store_true", help="log every OCPP frame")
    return p


def config_from_args(args: argparse.Namespace) -> FleetConfig:
    """Translate parsed arguments into a :class:`FleetConfig`."""
    duration = args.duration
    if duration is None and args.sessions is None:
        duration = DEFAULT_DURATION
    if not duration:
        duration = None
        if args.sessions is None:
            raise SystemExit("csms-sim: --duration 0 needs --sessions so the run ends")
    return FleetConfig(
        url=args.url,
        chargers=args.chargers,
        v201_share=args.v201_share,
        connectors=args.connectors,
        password=args.password,
        seed=args.seed,
        speed=args.speed,
        duration=duration,
        sessions=args.sessions,
        arrival_rate=args.arrival_rate,
        schedule=load_schedule(args.schedule) if args.schedule else (),
        faults=[parse_fault(f) for f in args.fault],
        id_tags=args.id_tags or ["SIMTAG"],
        dwell_mean_s=args.dwell,
        meter_interval=args.meter_interval,
        heartbeat_interval=args.heartbeat,
        max_power_w=args.max_power,
        id_prefix=args.id_prefix,
        rate_units=args.rate_units,
        cost_updates=args.cost_updates,
        progress=not args.quiet,
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    if not args.verbose:
        logging.getLogger("ocpp").setLevel(logging.CRITICAL)
    cfg = config_from_args(args)
    fleet_holder: list[Fleet] = []

    async def runner() -> int:
        fleet = Fleet(cfg)
        fleet_holder.append(fleet)
        loop = asyncio.get_running_loop()
        # Not available on Windows, nor outside the main thread (tests).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, fleet.finish)
            loop.add_signal_handler(signal.SIGTERM, fleet.finish)
        await fleet.run()
        return 0

    code = asyncio.run(runner())
    summary = fleet_holder[0].summary()
    if args.json:
        print(json.dumps(asdict(summary), indent=2, sort_keys=True))
    else:
        print(summary.format())
        hint = refused_hint(summary, cfg.id_tags)
        if hint:
            print(hint)
    return code


def refused_hint(summary: Summary, id_tags: Sequence[str]) -> str | None:
    """Explain a run where the CSMS refused every id token (e.g. none are configured)."""
    refused = sum(summary.auth_rejected.values())
    if not refused or summary.sessions_started > summary.sessions_deauthorized:
        return None
    return (
        f"hint: the CSMS refused every authorization ({refused}) for id tag(s) "
        f"{', '.join(id_tags)}; add them to its id_tokens table or pass --id-tag"
    )


if __name__ == "__main__":
    sys.exit(main())
