"""Per-connection settings and storm admission (csms/capacity.py, docs/capacity.md)."""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import shutil
import socket
import subprocess
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from csms import capacity
from csms.capacity import ConnectAdmission
from csms.config import Settings
from tests.conftest import RunningCsms, StartCsms
from tests.waiting import eventually

BOOT_16 = '[2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]'


def _connect(csms: RunningCsms, cp: str, **options: Any) -> Any:
    return connect(f"{csms.ocpp_url}/{cp}", subprotocols=["ocpp1.6"], **options)  # type: ignore[list-item]


async def _boot(ws: ClientConnection) -> Any:
    await ws.send(BOOT_16)
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame[0] == 3 and frame[1] == "b":
            return frame[2]


async def test_compression_is_not_negotiated_by_default(csms: RunningCsms) -> None:
    async with _connect(csms, "CP-NODEFLATE", compression="deflate") as ws:
        assert ws.protocol.extensions == []  # offered by the charger, refused by the CSMS
        assert (await _boot(ws))["status"] == "Accepted"


async def test_compression_can_be_turned_on(start_csms: StartCsms) -> None:
    csms = await start_csms(ws_compression=True)
    async with _connect(csms, "CP-DEFLATE", compression="deflate") as ws:
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        assert (await _boot(ws))["status"] == "Accepted"


async def test_server_connection_limits(csms: RunningCsms) -> None:
    async with _connect(csms, "CP-LIMITS") as ws:
        await _boot(ws)
        server_side = csms.app.registry.get("CP-LIMITS")
        assert server_side is not None
        conn = server_side.websocket
        assert conn.max_queue_high == capacity.RECEIVE_QUEUE_FRAMES
        assert conn.write_limit_high == capacity.WRITE_LIMIT_BYTES
        assert conn.protocol.max_message_size == csms.app.settings.hard_frame_limit


def test_server_options_follow_the_settings() -> None:
    options = capacity.server_options(Settings())
    assert options["compression"] is None
    assert options["open_timeout"] == Settings().ws_handshake_timeout
    on = capacity.server_options(Settings(ws_compression=True, ws_handshake_timeout=5.0))
    assert on["compression"] == "deflate" and on["open_timeout"] == 5.0


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if before[0] == before[1] and before[1] > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, before[1]))  # lowered, to be raised
        soft, hard = capacity.raise_open_files_limit()
        assert soft == hard == before[1]
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


async def test_admission_holds_at_most_limit_and_admits_in_order() -> None:
    admission = ConnectAdmission(2, hold_limit=60.0)
    keys = [object() for _ in range(4)]
    await admission.enter(keys[0])
    await admission.enter(keys[1])
    admitted: list[int] = []

    async def wait_turn(n: int) -> None:
        await admission.enter(keys[n])
        admitted.append(n)

    waiting = [asyncio.create_task(wait_turn(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    assert admitted == [] and admission.in_setup == 2
    admission.leave(keys[0])
    admission.leave(keys[0])  # a second leave gives nothing back twice
    await eventually(lambda: _async(admitted == [2]))
    assert admission.in_setup == 2
    admission.leave(keys[1])
    await asyncio.gather(*waiting)
    assert admitted == [2, 3]


async def test_admission_slot_is_given_back_when_its_holder_stalls() -> None:
    admission = ConnectAdmission(1, hold_limit=0.05)
    stalled, next_one = object(), object()
    await admission.enter(stalled)  # never leaves: the hold limit gives the slot back
    await asyncio.wait_for(admission.enter(next_one), 30)
    admission.connected(next_one)  # recorded: held BOOT_GRACE_SECONDS at most now
    assert admission.in_setup == 1
    admission.leave(next_one)
    assert admission.in_setup == 0


async def test_admission_leaves_once_the_boot_is_answered() -> None:
    admission = ConnectAdmission(1, hold_limit=60.0)
    key, booted = object(), asyncio.Event()
    await admission.enter(key)
    waiter = asyncio.create_task(admission.leave_when(key, booted))
    await asyncio.sleep(0)
    assert admission.in_setup == 1
    booted.set()
    await waiter
    assert admission.in_setup == 0


async def test_chargers_beyond_the_concurrency_are_all_accepted(start_csms: StartCsms) -> None:
    """One set-up slot: ten chargers connecting at once wait their turn, none is refused."""
    csms = await start_csms(connect_concurrency=1)

    async def one(n: int) -> str:
        async with _connect(csms, f"CP-Q{n}", open_timeout=60) as ws:
            return str((await _boot(ws))["status"])

    assert await asyncio.gather(*(one(n) for n in range(10))) == ["Accepted"] * 10
    server = csms.app._server
    assert server is not None
    await eventually(lambda: _async(server.admission.in_setup == 0))


async def test_a_charger_that_does_not_boot_does_not_block_the_others(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(connect_concurrency=1)
    async with _connect(csms, "CP-MUTE") as mute:
        async with _connect(csms, "CP-NEXT", open_timeout=60) as ws:  # admitted after the grace
            assert (await _boot(ws))["status"] == "Accepted"
        assert mute.protocol.state.name == "OPEN"  # the mute one is still connected


async def test_the_post_boot_probe_comes_after_the_spread(start_csms: StartCsms) -> None:
    csms = await start_csms(post_boot_spread_seconds=0.5)
    async with _connect(csms, "CP-SPREAD") as ws:
        await _boot(ws)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert frame[0] == 2 and frame[2] == "GetConfiguration"  # the capability probe


async def _async(value: bool) -> bool:
    return value


def test_full_collections_wait_while_chargers_are_set_up() -> None:
    normal = gc.get_threshold()
    pacing = capacity.FullCollections(ConnectAdmission(4, hold_limit=5.0), defer_limit=60.0)
    try:
        pacing.step(0.0, busy=True)  # a storm: no automatic full collection
        assert gc.get_threshold()[:2] == normal[:2]  # the young ones still run
        assert gc.get_threshold()[2] > 1_000_000
        pacing.step(30.0, busy=True)
        assert gc.get_threshold()[2] > 1_000_000
        pacing.step(31.0, busy=False)  # calm again: CPython's own rule, as before
        assert gc.get_threshold() == normal
        pacing.step(40.0, busy=True)
        pacing.step(101.0, busy=True)  # deferred long enough, even in a storm
        assert gc.get_threshold() == normal
        gc.set_threshold(10_000, normal[1], normal[2])  # csms.gc_tuning's young threshold
        pacing.step(110.0, busy=True)
        pacing.step(120.0, busy=False)
        assert gc.get_threshold() == (10_000, normal[1], normal[2])  # kept, not the start's
    finally:
        gc.set_threshold(*normal)


def test_the_listen_backlog_is_the_kernels_and_the_accept_batch_small() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(capacity.ACCEPTS_PER_LOOP_TURN)
        capacity.widen_listen_backlog([sock])
        port = sock.getsockname()[1]
        ss = shutil.which("ss")
        if ss is None:
            pytest.skip("no ss(8) to read the backlog of a listening socket")
        listing = subprocess.run(
            [ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        # ss shows a listening socket's backlog as its Send-Q
        assert int(listing[2]) == min(capacity.LISTEN_BACKLOG, _somaxconn())


def _somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as limit:
        return int(limit.read())
