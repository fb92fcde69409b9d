"""Log uploads the simulator really performs: HTTP(S) PUT of a generated log file.

Only to the CSMS's own host (its built-in upload receiver on the API port): a
simulator must not push files to arbitrary hosts, so any other location (an
``ftp://`` server, another host) keeps the simulated progress of
:meth:`SimCharger.start_upload`. For the CSMS's host the status reported
follows the real outcome of the upload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from charge_point_sim.commands import SimCharger


def log_text(charger: SimCharger, log_type: str) -> str:
    lines = [f"{charger.clock.now().isoformat()} {charger.cfg.charger_id} {log_type}"]
    for conn in charger.connectors.values():
        lines.append(f"connector {conn.id}: {conn.status}, {conn.energy_wh:.0f} Wh")
    return "\n".join(lines) + "\n"


def start_log_upload(
    charger: SimCharger,
    location: str,
    file_name: str,
    log_type: str,
    notify: Callable[[str], Any],
    failed: str,
) -> None:
    """Upload after the request is answered; report Uploading, then Uploaded or ``failed``."""
    target = urlsplit(location)
    if (
        target.scheme not in ("http", "https")
        or target.hostname != urlsplit(charger.cfg.url).hostname
    ):
        charger.start_upload(notify)
        return

    async def upload() -> None:
        charger.upload_status = "Uploading"
        await charger.try_send(notify("Uploading"))
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                answer = await client.put(
                    f"{location.rstrip('/')}/{file_name}",
                    content=log_text(charger, log_type).encode(),
                )
            outcome = "Uploaded" if answer.is_success else failed
        except httpx.HTTPError:
            outcome = failed
        charger.upload_status = outcome
        await charger.try_send(notify(outcome))
        charger.upload_status = "Idle"

    charger.defer(upload)
