"""How long storing a device-model report takes (NotifyReport parts -> device_model_variables).

A 2.0.1 charger (the ``ocpp`` library's) sends a report of ``--variables``
variables, two attributes each, in parts of ``--per-part`` (ItemsPerMessage);
prints the total time and the median / max answer time per part. Each part is
answered only after it is stored, so the part time is what the charger waits.
An embedded Postgres is started in a temporary folder and removed after.

    .venv/bin/python -m bench.device_model_report --variables 2000 --per-part 100
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
from typing import Any

from ocpp.v201 import ChargePoint, call
from websockets.asyncio.client import connect

from csms.app import Csms
from csms.config import Settings
from csms.storage.embedded import start_embedded, stop_embedded


def report_items(count: int) -> list[dict[str, Any]]:
    return [
        {
            "component": {"name": f"Comp{i // 20}", "evse": {"id": 1 + i % 2}},
            "variable": {"name": f"Var{i % 20}"},
            "variable_attribute": [
                {"type": "Actual", "value": str(i), "mutability": "ReadWrite"},
                {"type": "Target", "value": str(i)},
            ],
            "variable_characteristics": {"data_type": "integer", "supports_monitoring": True},
        }
        for i in range(count)
    ]


async def run(variables: int, per_part: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-device-model-"))
    dsn = await start_embedded(folder)
    settings = dataclasses.replace(
        Settings(), host="127.0.0.1", port=0, api_port=0, database_url=dsn, data_dir=folder
    )
    app = Csms(settings)
    await app.start()
    try:
        url = f"ws://127.0.0.1:{app.port}/ocpp/BENCH"
        async with connect(url, subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            station = ChargePoint("BENCH", ws)
            reader = asyncio.create_task(station.start())
            await station.call(
                call.BootNotification(
                    charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
                )
            )
            items = report_items(variables)
            parts = [items[i : i + per_part] for i in range(0, len(items), per_part)]
            waits = []
            started = time.perf_counter()
            for seq_no, part in enumerate(parts):
                sent = time.perf_counter()
                await station.call(
                    call.NotifyReport(
                        request_id=1,
                        generated_at="2026-12-05T10:00:00Z",
                        seq_no=seq_no,
                        tbc=seq_no < len(parts) - 1,
                        report_data=part,
                    )
                )
                waits.append(time.perf_counter() - sent)
            total = time.perf_counter() - started
            reader.cancel()
        rows = await app.pool.fetchval("SELECT count(*) FROM device_model_variables")
        print(
            f"{variables} variables ({rows} attribute rows) in {len(parts)} parts: "
            f"{total:.2f} s; per part median {statistics.median(waits) * 1000:.0f} ms, "
            f"max {max(waits) * 1000:.0f} ms"
        )
    finally:
        await app.stop()
        stop_embedded(folder)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, default=2000)
    parser.add_argument("--per-part", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.variables, args.per_part))


if __name__ == "__main__":
    main()
