"""The CSMS's own CPU per message on the charger path, with no I/O at all.

    python -m bench.message_path [--messages 20000] [--rounds 1] [--profile N]

Runs the frames a benchmark charger sends most (bench.ocpp_load: a 1.6
MeterValues, a 2.0.1 TransactionEvent Updated, both with 8 samples, and a
StatusNotification) through a real :class:`~csms.connection.OcppConnection`
and :class:`~csms.central.CentralSystem` -- frame parse, poison screening,
schema validation, handler, event, the group-commit write with its bulk
writer's arguments, the bus, the answer frame through websockets' framing --
with the two edges replaced: the socket (the answer is framed by the
``websockets`` protocol object, not written) and the database (the bulk
writers get a connection that returns what Postgres would, at once). What is
left out: the system calls, asyncpg's encoding of the arguments, the loop's
wake-ups between the message and its batch. Prints microseconds per message
of each kind (``--rounds R``: the least of R rounds, the figure least moved by
other work on a shared machine); ``--profile N`` prints cProfile's top N
functions by own time. Loggers are configured as the CSMS's (info level, each
logger cached at its first use).

Compare two versions by running this file with the other checkout's
interpreter from a folder outside this checkout (``cd /tmp && <other>/.venv/bin/python
<this>/bench/message_path.py``): it then imports that checkout's ``csms`` and ``handlers``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from collections.abc import Sequence
from typing import Any

from websockets.protocol import State
from websockets.server import ServerProtocol

from bench.ocpp_load import ChargerScript
from csms.bus import EventBus
from csms.central import CentralSystem
from csms.config import Settings
from csms.events import RegistrationStatus
from csms.storage.group_commit import Write


class _Row(dict[str, Any]):
    """What an asyncpg Record is to the writers: read by key."""


class _Database:
    """A connection whose statements return what Postgres would, without sending them."""

    async def fetch(self, sql: str, *args: Any) -> list[_Row]:
        count = len(args[0])
        if "INSERT INTO sessions" in sql:  # sessions.upsert_many: cp, transaction, id
            return [
                _Row(charge_point_id=cp, transaction_id=tx, id=1)
                for cp, tx in zip(args[0], args[2], strict=True)
            ]
        return [_Row(i=i, session_id=1, duplicate=False) for i in range(count)]

    async def fetchrow(self, sql: str, *args: Any) -> _Row:
        # the session events' statement: (i, session id) of each event written
        count = len(args[0])
        return _Row(locks=len(args[1]), stored=[], i=list(range(count)), id=[1] * count)

    async def execute(self, sql: str, *args: Any) -> str:
        return "INSERT 0 1"


class _Committer:
    """Group commit without the database: each write's bulk writer runs at once."""

    def __init__(self) -> None:
        self.database = _Database()

    async def submit(self, write: Write[Any]) -> Any:
        if write.bulk is None:
            raise RuntimeError(f"{write.apply} has no bulk writer: not on the measured path")
        results: Sequence[Any] = await write.bulk(self.database, [write.item])
        return results[0]


class _Socket:
    """The answer goes through websockets' framing (as the server's send does) and no further."""

    def __init__(self) -> None:
        self.protocol = ServerProtocol()
        self.protocol.state = State.OPEN
        self.sent = 0

    async def send(self, message: str) -> None:
        self.protocol.send_text(message.encode())
        chunks = self.protocol.data_to_send()
        if message.startswith("[3,"):  # a CALLRESULT (a CALLERROR would mean a broken path)
            self.sent += len(chunks)


def _frames(v201: bool, count: int) -> dict[str, list[str]]:
    """``count`` frames of each measured kind, as one charger of bench.ocpp_load sends them."""
    script = ChargerScript("BENCH-1", v201)
    script.transaction_id = "BENCH-1-1" if v201 else 7
    frames: dict[str, list[str]] = {"meter": [], "status": []}
    for number in range(count):
        meter = script._meter_value()
        frames["meter"].append(json.dumps([2, f"m{number}", meter.action, meter.payload]))
        status = script._status("Charging", "Occupied")
        frames["status"].append(json.dumps([2, f"s{number}", status.action, status.payload]))
    return frames


async def _connection(v201: bool) -> Any:
    from handlers.v16 import ChargePoint16
    from handlers.v201 import ChargePoint201

    settings = Settings()
    central = CentralSystem(pool=None, settings=settings, bus=EventBus())  # type: ignore[arg-type]
    central.group_commit = _Committer()  # type: ignore[assignment]
    kind = ChargePoint201 if v201 else ChargePoint16
    connection = kind("BENCH-1", _Socket(), central, settings)  # type: ignore[arg-type]
    connection.registration = RegistrationStatus.ACCEPTED
    return connection


async def _measure(
    messages: int, profile: cProfile.Profile | None
) -> tuple[dict[str, float], dict[str, int]]:
    """(CPU us per message, answer frames sent for the measured messages), by kind."""
    results: dict[str, float] = {}
    answers: dict[str, int] = {}
    for v201 in (False, True):
        connection = await _connection(v201)
        socket: _Socket = connection.websocket
        frames = _frames(v201, messages)
        for kind, texts in frames.items():
            for text in texts[:200]:  # warm: caches, compiled validators
                await connection.route_message(text)
            sent = socket.sent
            if profile is not None:
                profile.enable()
            started = time.process_time()
            for text in texts:
                await connection.route_message(text)
            spent = time.process_time() - started
            if profile is not None:
                profile.disable()
            name = f"{'2.0.1' if v201 else '1.6'} {kind}"
            results[name] = spent / len(texts) * 1e6
            answers[name] = socket.sent - sent
    return results, answers


async def measure_answers(messages: int) -> dict[str, int]:
    """CALLRESULT frames sent per kind for ``messages`` measured messages (for a test)."""
    return (await _measure(messages, None))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=1, help="print the least of R rounds")
    parser.add_argument("--profile", type=int, default=0, help="top N of cProfile")
    args = parser.parse_args()
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(20), cache_logger_on_first_use=True
    )
    profile = cProfile.Profile() if args.profile else None
    results: dict[str, float] = {}
    for _ in range(max(1, args.rounds)):
        measured, _ = asyncio.run(_measure(args.messages, profile))
        for name, micros in measured.items():
            results[name] = min(micros, results.get(name, micros))
    for name, micros in results.items():
        print(f"{name:>16}: {micros:7.1f} us CPU per message (no I/O)")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
