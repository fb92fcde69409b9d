"""``csms demo``: the CSMS with a simulated fleet, for trying it without hardware.

Starts the CSMS exactly as ``csms serve`` does (embedded PostgreSQL unless
``DATABASE_URL`` is set), makes sure the demo id token exists, issues an
operator API key for the run, and drives a simulated fleet of both OCPP
versions against it until the simulated time is up or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from charge_point_sim import Fleet, FleetConfig
from csms.app import Csms
from csms.config import Settings
from csms.storage import api_keys, tokens

DEMO_TOKEN = "DEMO-TAG"


async def run_demo(settings: Settings, chargers: int, speed: float, duration: float) -> int:
    app = Csms(settings)
    await app.start()
    fleet: Fleet | None = None
    try:
        await tokens.upsert(app.pool, DEMO_TOKEN, "Accepted")
        _, key = await api_keys.create(app.pool, "csms demo", "operator")
        local_ocpp = f"ws://127.0.0.1:{app.port}{settings.ocpp_path_prefix.rstrip('/')}"
        print(
            f"CSMS ready: chargers connect to {app.ocpp_url}/<charge_point_id>; "
            f"operator API: {app.api_url}\n"
            f"demo: {chargers} simulated chargers, {duration:g} simulated seconds at {speed:g}x; "
            f"try: curl -H 'Authorization: Bearer {key}' {app.api_url}/chargers",
            flush=True,
        )
        fleet = Fleet(
            FleetConfig(
                url=local_ocpp,
                chargers=chargers,
                speed=speed,
                duration=duration,
                id_tags=[DEMO_TOKEN],
                progress=sys.stderr.isatty(),
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, fleet.finish)
        summary = await fleet.run()
        print("\n" + summary.format(), flush=True)
        return 0
    finally:
        await app.stop()
