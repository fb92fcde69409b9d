"""``csms consume``: an example consumer, the way the CSMS's consumers should read.

For ``station-status`` it keeps a live availability table (what a mobile app
shows); for any other topic it prints one line per event. Either way it
dedupes by ``event_id``, as every consumer must: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from csms.config import Settings

_CLEAR = "\x1b[H\x1b[2J"


class Deduper:
    """Remembers the last ``size`` event ids; ``seen`` is True for a repeat."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str) -> bool:
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False


@dataclass
class Station:
    online: bool | None = None
    connectors: dict[tuple[int, int], str] = field(default_factory=dict)
    since: str = ""


def apply_status(stations: dict[str, Station], envelope: dict[str, Any]) -> None:
    """Fold one station-status event into the table (pure, for the tests)."""
    station = stations.setdefault(envelope["charge_point_id"], Station())
    kind, payload = envelope["type"], envelope["payload"]
    if kind == "charger_connected":
        station.online = True
    elif kind == "charger_disconnected":
        station.online = False
    elif kind == "connector_status_changed":
        station.connectors[(payload["evse_id"], payload["connector_id"])] = payload["status"]
    station.since = envelope["occurred_at"]


def render_table(stations: dict[str, Station]) -> str:
    rows = [("CHARGER", "ONLINE", "CONNECTORS (evse/connector: status)", "LAST EVENT")]
    for charger in sorted(stations):
        station = stations[charger]
        online = {True: "yes", False: "no", None: "?"}[station.online]
        connectors = "  ".join(
            f"{evse}/{connector}: {status}"
            for (evse, connector), status in sorted(station.connectors.items())
        )
        rows.append((charger, online, connectors or "-", station.since))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )


async def consume(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    group_id: str | None = None,
    max_seconds: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Read ``topic`` until interrupted (or for ``max_seconds``); return events shown."""
    assert settings.kafka_bootstrap_servers, "set KAFKA_BOOTSTRAP_SERVERS"
    out = out or sys.stdout  # resolved now: a test or a pipe may have replaced it
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        client_id="csms-consume",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None,
    )
    status_table = topic == settings.kafka_topic_station_status
    live = out.isatty()
    dedupe, stations, shown = Deduper(), dict[str, Station](), 0
    loop = asyncio.get_running_loop()
    deadline = None if max_seconds is None else loop.time() + max_seconds
    await consumer.start()
    try:
        while deadline is None or loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            changed = False
            for records in batches.values():
                for record in records:
                    envelope = json.loads(record.value)
                    if dedupe.seen(envelope["event_id"]):
                        continue
                    shown += 1
                    if status_table:
                        apply_status(stations, envelope)
                        changed = True
                    else:
                        print(_line(envelope), file=out, flush=True)
            if status_table and changed:
                print(
                    (_CLEAR if live else "") + render_table(stations) + "\n", file=out, flush=True
                )
    finally:
        await consumer.stop()
    return shown


def _line(envelope: dict[str, Any]) -> str:
    payload = json.dumps(envelope["payload"], separators=(",", ":"))
    return (
        f"{envelope['occurred_at']}  {envelope['charge_point_id']}  {envelope['type']}  {payload}"
    )
