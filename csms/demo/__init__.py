"""``csms demo``: the whole system with a simulated fleet, until Ctrl-C.

It starts the CSMS as ``csms serve`` does, but with its own data folder (a
fresh temporary one unless ``--data-dir`` is given; never the default
``./.csms-data`` a real install uses), its own embedded Kafka-protocol broker,
a depot site, tariffs and tokens (:mod:`csms.demo.scenario`), and drives a
simulated fleet of both OCPP versions against it. The console shows the URLs
once and then a compact summary redrawn in place (:mod:`csms.demo.console`);
the CSMS's log lines go to a file in the data folder unless ``--verbose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from charge_point_sim import Fleet
from csms.app import Csms
from csms.config import Settings
from csms.demo import scenario
from csms.demo.console import DemoState, observe, render
from csms.events import RegistrationStatus
from csms.outbox.embedded import embedded_kafka, free_port, port_is_free
from csms.storage import api_keys, chargers
from csms.storage.database import resolve_dsn
from csms.storage.embedded import stop_embedded

__all__ = ["DemoOptions", "DemoState", "prepare_settings", "run_demo"]

PLAIN_SUMMARY_S = 30.0  # without a terminal the summary is printed this often, not redrawn


@dataclass(frozen=True)
class DemoOptions:
    chargers: int = 12
    speed: float = 60.0
    duration: float | None = None  # simulated seconds; None = until Ctrl-C
    kafka: bool = True
    refresh_s: float = 1.0
    keep_data: bool = False  # a temporary data folder is deleted at the end unless set


def prepare_settings(
    settings: Settings, data_dir: Path | None, database_url: str | None
) -> tuple[Settings, bool]:
    """The demo's settings and whether its data folder is a temporary one.

    The data folder is ``data_dir`` if one was given on the command line, else a
    new temporary folder: never ``CSMS_DATA_DIR`` or ``./.csms-data``. The
    database is the embedded one unless ``--database-url`` was given (a
    ``DATABASE_URL`` in the environment is ignored: the demo's tokens and keys
    must not land in a real database). Ports that are taken are replaced by free
    ones, and the clock-skew rule is off (the simulated clock runs fast).
    """
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="csms-demo-")) if data_dir is None else data_dir
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    port = settings.port if settings.port and port_is_free(host, settings.port) else 0
    api_port = settings.api_port
    if not api_port or not port_is_free(settings.api_host or host, api_port):
        api_port = free_port()
    demo = dataclasses.replace(
        settings,
        data_dir=folder,
        database_url=database_url,
        port=port,
        api_port=api_port,
        alerts_clock_skew_max=0.0,
    )
    return demo, temporary


async def run_demo(
    settings: Settings, options: DemoOptions, out: TextIO | None = None
) -> DemoState:
    """Run the demo until ``options.duration`` simulated seconds or Ctrl-C; return what it saw."""
    out = out or sys.stdout
    live = out.isatty()
    state = DemoState()
    print(f"csms demo: starting PostgreSQL, Kafka and the CSMS in {settings.data_dir} ...",
          file=out, flush=True)  # fmt: skip
    dsn = await resolve_dsn(settings)
    async with _kafka(settings, dsn, options.kafka) as bootstrap:
        settings = dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap)
        app = Csms(settings)
        await app.start()
        fleet: Fleet | None = None
        try:
            plan = scenario.layout(options.chargers)
            async with app.pool.acquire() as conn:
                for charge_point_id in plan.charger_ids:  # commissioned, as an operator would
                    await chargers.register(conn, charge_point_id, RegistrationStatus.ACCEPTED)
                _, key = await api_keys.create(conn, "csms demo", "operator")
            api_base = f"http://127.0.0.1:{app.api_port}"
            async with httpx.AsyncClient(
                base_url=f"{api_base}/api/v1", headers={"Authorization": f"Bearer {key}"},
                timeout=10.0,
            ) as api:  # fmt: skip
                await scenario.provision(api, plan)
                local_ocpp = f"ws://127.0.0.1:{app.port}{settings.ocpp_path_prefix.rstrip('/')}"
                fleet = Fleet(
                    scenario.fleet_config(plan, local_ocpp, options.speed, options.duration)
                )
                _banner(out, app, api_base, key, bootstrap, settings, options)
                await fleet.start()
                _on_interrupt(fleet)
                await _watch(api, fleet, app, state, options, out, live)
                await fleet.stop()
                fleet_summary = fleet.summary()
                _update_from_fleet(state, fleet)
                state.active_sessions = (
                    fleet.stats.sessions_started - fleet.stats.sessions_completed
                )
                await observe(api, state, gauges=False)  # the CDRs of the sessions just stopped
            print(("\n" if live else "") + "\n".join(render(state)), file=out, flush=True)
            print("\n" + fleet_summary.format(), file=out, flush=True)
            return state
        finally:
            if fleet is not None and not fleet.stop_event.is_set():
                await fleet.stop()
            await app.stop()


@contextlib.asynccontextmanager
async def _kafka(settings: Settings, dsn: str, enabled: bool) -> AsyncIterator[str | None]:
    if not enabled:
        yield settings.kafka_bootstrap_servers
        return
    async with embedded_kafka(settings, dsn, settings.data_dir) as bootstrap:
        yield bootstrap


def _on_interrupt(fleet: Fleet) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, fleet.finish)


async def _watch(
    api: httpx.AsyncClient,
    fleet: Fleet,
    app: Csms,
    state: DemoState,
    options: DemoOptions,
    out: TextIO,
    live: bool,
) -> None:
    """Refresh the summary until the fleet's run is over (duration reached or Ctrl-C)."""
    prioritised: set[str] = set()
    waiting = asyncio.create_task(fleet.wait())
    drawn = 0
    loop = asyncio.get_running_loop()
    next_plain = loop.time() + PLAIN_SUMMARY_S
    try:
        while not waiting.done():
            await scenario.prioritise_fleet(api, prioritised)
            _update_from_fleet(state, fleet)
            relay = app.outbox.relay_stats if app.outbox is not None else None
            state.kafka_events = None if relay is None else relay.published_events
            await observe(api, state)
            if not live and loop.time() >= next_plain:  # a pipe or a log: every 30 s
                next_plain = loop.time() + PLAIN_SUMMARY_S
                print("\n".join(render(state)) + "\n", file=out, flush=True)
            if live:
                lines = render(state)
                # Move up over the previous summary and redraw it in place.
                out.write((f"\x1b[{drawn}F" if drawn else "") + "".join(
                    f"\x1b[2K{line}\n" for line in lines
                ))  # fmt: skip
                out.flush()
                drawn = len(lines)
            await asyncio.wait({waiting}, timeout=options.refresh_s)
    finally:
        if not waiting.done():
            waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting


def _update_from_fleet(state: DemoState, fleet: Fleet) -> None:
    summary = fleet.summary()
    state.sim_seconds = summary.sim_seconds
    state.sessions_started = fleet.stats.sessions_started
    state.sessions_completed = fleet.stats.sessions_completed
    state.energy_kwh = fleet.stats.energy_wh / 1000.0


def _banner(
    out: TextIO,
    app: Csms,
    api_base: str,
    key: str,
    bootstrap: str | None,
    settings: Settings,
    options: DemoOptions,
) -> None:
    """The URLs, once. The key is only in the URL's fragment: browsers never send it."""
    rule = "=" * 78
    kafka = (
        f"csms consume charging-sessions --kafka-bootstrap-servers {bootstrap}"
        if bootstrap
        else "off (--no-kafka)"
    )
    lines = [
        rule,
        "  CSMS demo is running. Open the dashboard (logs you in with this run's key):",
        "",
        f"    {api_base}/#key={key}",
        "",
        f"  Chargers connect to  {app.ocpp_url}/<charge_point_id>  (OCPP 1.6J and 2.0.1)",
        f"  API documentation    {api_base}/api/v1/docs",
        f"  Kafka events         {kafka}",
        f"  Data and log         {settings.data_dir}",
        f"  Fleet                {options.chargers} simulated chargers at {options.speed:g}x "
        + ("until Ctrl-C" if options.duration is None else f"for {options.duration:g} simulated s"),
        rule,
        "",
    ]
    print("\n".join(lines), file=out, flush=True)


def remove_data(settings: Settings) -> None:
    """Stop the embedded Postgres of a temporary demo folder and delete the folder."""
    with contextlib.suppress(Exception):
        stop_embedded(settings.data_dir)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
