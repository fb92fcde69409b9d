"""kill -9 during a meter stream: every acknowledged reading is stored exactly once (15.10).

A ``csms`` subprocess serves one 1.6 charger that streams MeterValues, one
reading each, as fast as they are answered. After some readings the process is
killed with SIGKILL mid-stream; a new one starts on the same database. The
charger, as a real one does, sends again what was not answered -- and, to test
the resend path, also the last readings that were answered. Every answered
reading must be stored, and no reading twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(dsn: str, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "serve",
        env={**os.environ, "DATABASE_URL": dsn, "CSMS_HOST": "127.0.0.1",
             "CSMS_PORT": str(port), "CSMS_API_PORT": "0", "CSMS_LOG_LEVEL": "warning"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, "csms exited during start-up"
        if b"CSMS ready" in line:
            return process


def reading(n: int) -> str:
    minute, second = divmod(n, 60)
    hour, minute = divmod(minute, 60)
    return json.dumps([2, f"mv-{n}", "MeterValues", {"connectorId": 1, "meterValue": [{
        "timestamp": f"2026-01-01T{hour:02d}:{minute:02d}:{second:02d}Z",
        "sampledValue": [{"value": str(n)}]}]}])  # fmt: skip


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def _stream(ws: ClientConnection, numbers: range, acked: set[int], kill_after: int,
                  process: asyncio.subprocess.Process) -> None:  # fmt: skip
    """Send readings, several in flight at once; kill the CSMS after ``kill_after`` acks."""
    in_flight = 8
    answered = asyncio.Event()

    async def answers() -> None:
        try:
            async for raw in ws:
                answer = json.loads(raw)
                if answer[0] == 3:
                    acked.add(int(answer[1].removeprefix("mv-")))
                    answered.set()
                    if len(acked) == kill_after:
                        process.send_signal(signal.SIGKILL)
        finally:
            answered.set()

    reader = asyncio.create_task(answers())
    try:
        for n in numbers:
            while n - in_flight >= 0 and n - in_flight not in acked and not reader.done():
                answered.clear()
                await asyncio.wait_for(answered.wait(), 10)
            if reader.done():
                break
            await ws.send(reading(n))
        await asyncio.wait_for(reader, 30)
    except Exception:
        pass
    finally:
        reader.cancel()


async def test_kill_9_during_a_meter_stream_loses_and_doubles_nothing(
    database_dsn: str, processes: list[asyncio.subprocess.Process]
) -> None:
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ocpp/CRASH"
    processes.append(await _start(database_dsn, port))
    acked: set[int] = set()
    sent = range(0, 2000)
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await _stream(ws, sent, acked, kill_after=300, process=processes[0])
    assert await asyncio.wait_for(processes[0].wait(), 30) == -signal.SIGKILL
    acked_before_crash = set(acked)
    assert 300 <= len(acked_before_crash) < len(sent)

    processes.append(await _start(database_dsn, port))
    last = max(acked_before_crash)
    resend = [n for n in range(last - 20, last + 9) if n >= 0]  # answered or not: again
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        for n in resend:
            await ws.send(reading(n))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer[:2] == [3, f"mv-{n}"]
            acked.add(n)

    conn = await asyncpg.connect(database_dsn)
    try:
        stored = [int(v) for v in await conn.fetchval(
            "SELECT array_agg(value ORDER BY value) FROM meter_samples "
            "WHERE charge_point_id = 'CRASH'")]  # fmt: skip
    finally:
        await conn.close()
    doubled = len(stored) - len(set(stored))
    lost = acked - set(stored)
    print(f"\ncrash: {len(acked_before_crash)} readings acknowledged before kill -9, "
          f"{len(resend)} resent after restart, {len(acked)} acknowledged in all, "
          f"{len(stored)} stored, {len(lost)} lost, {doubled} doubled")  # fmt: skip
    assert lost == set() and doubled == 0
