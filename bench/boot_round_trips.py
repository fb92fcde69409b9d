"""Database round trips of one charger's set-up: connect, boot, first status, first beat.

    python -m bench.boot_round_trips [--chargers 20] [--show]

Starts the CSMS in this process on a fresh embedded PostgreSQL (post-boot probe at
once), logs every statement its charger pool runs (asyncpg's query logger, on every
pool connection), and walks ``--chargers`` chargers of each OCPP version one after
the other through: WebSocket connect (authentication, presence, connection event),
BootNotification, the first StatusNotifications (1.6: connectors 0-2; 2.0.1: EVSE 1),
a first Heartbeat, the post-boot capability probe, and the close. After each step it
waits until the database is quiet, so work the step set off (services reacting to its
event) is counted with it.

Per step it prints statements per charger: on the charger's own path (what its answer
waits for: the connection's task, the gate's lookup, group-commit batches) and off it
(services, background tasks); BEGIN/COMMIT count (each is a round trip), and with
``--show`` the statement texts. Periodic background work (leases, the outbox relay)
runs meanwhile and is counted as "off path" too; compare its share by running with
more chargers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from websockets.asyncio.client import ClientConnection, connect

from bench.connection_fleet import answer_to, boot_payload
from csms.app import Csms
from csms.config import LogFormat, Settings
from csms.logs import configure_logging
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded, with_database

# The handshake's credential lookup (before and after it was batched, csms.presence).
_CREDENTIAL_LOOKUPS = ("SELECT security_profile,", "SELECT c.security_profile,")
STEPS = ("connect", "boot", "status", "heartbeat", "probe", "close")
# asyncpg's introspection of a type the first time one pool connection meets it: once
# per connection, not per charger, so whichever charger came first must not pay it.
_INTROSPECTION = (
    "SELECT current_setting('jit')",
    "WITH RECURSIVE typeinfo_tree(",
    "SELECT set_config('jit',",
)
_ids = itertools.count()


@dataclasses.dataclass
class Tally:
    """Statements seen per (version, step, on path?) and their texts."""

    current: tuple[str, str] = ("", "start")
    texts: Counter[tuple[str, str, bool, str]] = dataclasses.field(default_factory=Counter)
    seconds: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    periodic: dict[str, float] = dataclasses.field(default_factory=dict)  # per second, idle
    last_at: float = 0.0  # of a statement that is not periodic background work
    step_started: float = 0.0

    def log(self, record: Any) -> None:
        version, step = self.current
        bound = structlog.contextvars.get_contextvars()
        text = _short(record.query)
        if text.startswith(_INTROSPECTION):
            return
        # the gate's credential lookup runs in the handshake, before the id is bound
        on_path = "charge_point_id" in bound or text.startswith(_CREDENTIAL_LOOKUPS)
        self.texts[version, step, on_path, text] += 1
        if on_path or text not in self.periodic:
            self.last_at = time.monotonic()

    def begin(self, version: str, step: str) -> None:
        now = time.monotonic()
        self.seconds[self.current] = self.seconds.get(self.current, 0.0) + now - self.step_started
        self.current, self.step_started = (version, step), now

    def net(self, version: str, step: str, on_path: bool, text: str) -> float:
        """Statements of ``text`` in this step, less what background work ran meanwhile."""
        count = self.texts[version, step, on_path, text]
        if on_path:
            return count
        rate = self.periodic.get(text, 0.0)
        return max(0.0, count - rate * self.seconds.get((version, step), 0.0))


def _short(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()[:110]


async def _quiet(tally: Tally, for_seconds: float = 0.3) -> None:
    """Until no statement but periodic ones ran for ``for_seconds`` (bounded)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if time.monotonic() - tally.last_at > for_seconds:
            return


async def _call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    message_id = str(next(_ids))
    await ws.send(json.dumps([2, message_id, action, payload]))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame[0] == 2:
            await ws.send(json.dumps([3, frame[1], answer_to(frame[2], frame[3])]))
        elif frame[1] == message_id:
            if frame[0] != 3:
                raise RuntimeError(f"{action} answered {frame}")
            result: dict[str, Any] = frame[2]
            return result


async def _answer_calls(ws: ClientConnection, seconds: float) -> None:
    """Answer what the CSMS asks (the post-boot probe) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            return
        if frame[0] == 2:
            await ws.send(json.dumps([3, frame[1], answer_to(frame[2], frame[3])]))


def _statuses(v201: bool) -> list[dict[str, Any]]:
    now = "2026-01-01T00:00:00Z"
    if v201:
        return [{"timestamp": now, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}]
    return [
        {"connectorId": c, "errorCode": "NoError", "status": "Available", "timestamp": now}
        for c in (0, 1, 2)
    ]


async def one_charger(url: str, tally: Tally, version: str, charge_point_id: str) -> None:
    v201 = version == "2.0.1"
    tally.begin(version, "connect")
    ws = await connect(
        f"{url}/{charge_point_id}",
        subprotocols=["ocpp2.0.1" if v201 else "ocpp1.6"],  # type: ignore[list-item]
        ping_interval=None,
    )
    await _quiet(tally)
    tally.begin(version, "boot")
    answer = await _call(ws, "BootNotification", boot_payload(v201))
    assert answer["status"] == "Accepted", answer
    tally.begin(version, "probe")
    await _answer_calls(ws, 0.5)
    await _quiet(tally)
    tally.begin(version, "status")
    for status in _statuses(v201):
        await _call(ws, "StatusNotification", status)
    await _quiet(tally)
    tally.begin(version, "heartbeat")
    await _call(ws, "Heartbeat", {})
    await _quiet(tally)
    tally.begin(version, "close")
    await ws.close()
    await _quiet(tally)
    tally.begin("", "between")


def _report(tally: Tally, per_version: int, show: bool) -> None:
    for version in ("1.6", "2.0.1"):
        print(f"OCPP {version}: statements per charger (round trips; BEGIN/COMMIT included)")
        total_on = total_off = 0.0
        for step in STEPS:
            rows = [
                (path, text, tally.net(v, s, path, text) / per_version)
                for (v, s, path, text) in list(tally.texts)
                if v == version and s == step
            ]
            on = sum(n for path, _, n in rows if path)
            off = sum(n for path, _, n in rows if not path)
            total_on, total_off = total_on + on, total_off + off
            print(f"  {step:10} on the charger's path {on:5.1f}   off it {off:5.1f}")
            if show:
                for path, text, n in sorted(rows, key=lambda r: (not r[0], -r[2])):
                    if n >= 0.3:
                        print(f"      {'on ' if path else 'off'} {n:4.1f}  {text}")
        print(f"  {'total':10} on the charger's path {total_on:5.1f}   off it {total_off:5.1f}")
    print("(off the path: less the background statements an idle node runs in the same time)")


def on_path(tally: Tally, version: str, step: str, per_version: int) -> float:
    """Statements per charger of ``step`` on the charger's own path."""
    return (
        sum(n for (v, s, path, _), n in tally.texts.items() if v == version and s == step and path)
        / per_version
    )


async def count(dsn: str, chargers: int, idle_seconds: float = 15.0) -> Tally:
    """Run the CSMS on database ``dsn`` (migrated) and count the set-ups' statements."""
    settings = dataclasses.replace(
        Settings(),
        host="127.0.0.1",
        port=0,
        api_port=0,
        database_url=dsn,
        migrate_on_start=False,
        post_boot_spread_seconds=0.0,
        db_pool_min=10,
        db_pool_max=10,
        node_id="rtt",
    )
    app = Csms(settings)
    await app.start()
    tally = Tally()
    try:
        for holder in app.pool._holders:  # type: ignore[attr-defined]  # every pool connection
            if holder._con is not None:
                holder._con.add_query_logger(tally.log)
        url = f"ws://127.0.0.1:{app.port}/ocpp"
        # First connections register the chargers (and warm statement caches); what
        # is counted is their second: a known charger reconnecting, as in a storm.
        for n in range(chargers):
            for version in ("1.6", "2.0.1"):
                await one_charger(url, tally, version, f"rtt-{version}-{n}")
        tally.texts.clear()
        tally.begin("", "idle")  # what an idle node runs per second: subtracted from steps
        await asyncio.sleep(idle_seconds)
        tally.begin("", "between")
        for (_, step, _, text), n in tally.texts.items():
            if step == "idle":
                tally.periodic[text] = tally.periodic.get(text, 0.0) + n / idle_seconds
        tally.texts.clear()
        for n in range(chargers):
            for version in ("1.6", "2.0.1"):
                await one_charger(url, tally, version, f"rtt-{version}-{n}")
    finally:
        await app.stop()
    return tally


async def run(chargers: int, show: bool, data_dir: Path) -> None:
    dsn = await start_embedded(data_dir)
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute("CREATE DATABASE rtt")
    finally:
        await admin.close()
    await run_migrations(with_database(dsn, "rtt"))
    _report(await count(with_database(dsn, "rtt"), chargers), chargers, show)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=20, help="per OCPP version")
    parser.add_argument("--show", action="store_true", help="print the statements")
    args = parser.parse_args()
    configure_logging(LogFormat.CONSOLE, "error")
    data_dir = Path(tempfile.mkdtemp(prefix="rtt-"))
    try:
        asyncio.run(run(args.chargers, args.show, data_dir))
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
