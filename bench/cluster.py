"""Several CSMS nodes on one database, one port: spread, commands, kill -9, rolling restart.

    python -m bench.cluster [--nodes 3] [--chargers 500] [--rate 100] [--drain-seconds 5]

Starts an embedded PostgreSQL (migrated once) and ``--nodes`` CSMS processes on
it, each its own cluster node (CSMS_NODE_ID bench-node-N) with its own API
port, all sharing one OCPP port through SO_REUSEPORT as the workers of
``csms --workers N`` do. A light fleet (bench.light_fleet: half 1.6J, half
2.0.1, ``--rate`` calls/s in all) connects and stays connected. Then it prints:

1. chargers per node (from presence: ``chargers.node_id``);
2. command round trip through the HTTP API (DataTransfer), p50/p99: the API
   of the node holding the charger, and the API of another node (forwarded);
3. rolling restart: SIGTERM to one node, which drains (close 1012 spread over
   ``--drain-seconds``); how long until it exits, how many charger calls went
   unanswered (their socket closed before the answer; the charger resends them),
   and how long until its chargers were all back on the other nodes; the node is
   then started again;
4. kill -9 of another node: how long until all its chargers were online again on
   the others (booted, and shown connected on a live node in Postgres).

``--fill-first`` connects the whole fleet while only the first node runs (the
others start after), so that the rolling restart drains a node that holds every
charger. Loopback only; every phase bounded; ``--chargers 500`` runs in well
under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

from bench.light_fleet import LightCharger, LightFleet
from csms.config import LogFormat
from csms.logs import configure_logging
from csms.storage import api_keys
from csms.storage.database import run_migrations
from csms.storage.embedded import start_embedded, stop_embedded


class Node:
    def __init__(self, index: int, dsn: str, port: int, drain: float, log_dir: Path) -> None:
        self.index, self.dsn, self.port, self.drain = index, dsn, port, drain
        self.node_id = f"bench-node-{index}"
        self.log_path = log_dir / f"{self.node_id}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.api = ""
        self.log_level = "warning"

    async def start(self) -> None:
        env = {
            **os.environ,
            "CSMS_NODE_ID": self.node_id,
            "CSMS_REUSE_PORT": "true",
            "CSMS_DB_POOL_MAX": "10",
        }
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "csms", "--host", "127.0.0.1", "--port", str(self.port),
                "--api-port", "0", "--database-url", self.dsn, "--no-migrate",
                "--drain-seconds", str(self.drain), "--log-level", self.log_level,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode()
        if "operator API: " not in line:
            raise RuntimeError(f"{self.node_id} did not start: see {self.log_path}")
        self.api = line.split("operator API: ")[1].strip()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _until(check: Callable[[], Awaitable[bool]], within: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise TimeoutError(f"not settled within {within:g} s")
        await asyncio.sleep(step)
    return time.monotonic() - started


async def _holders(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT charge_point_id, node_id FROM chargers WHERE connected")
    return {r["charge_point_id"]: r["node_id"] for r in rows}


async def _commands(
    http: httpx.AsyncClient, nodes: list[Node], holders: dict[str, str], count: int, remote: bool
) -> tuple[list[float], int]:
    by_id = {n.node_id: n for n in nodes}
    samples: list[float] = []
    failed = 0
    gate = asyncio.Semaphore(10)
    ids = sorted(holders)[:count]

    async def one(i: int, charge_point_id: str) -> None:
        nonlocal failed
        holder = by_id[holders[charge_point_id]]
        via = nodes[(nodes.index(holder) + 1) % len(nodes)] if remote else holder
        async with gate:
            started = time.perf_counter()
            answer = await http.post(
                f"{via.api}/chargers/{charge_point_id}/commands/data_transfer",
                json={"vendor_id": "bench", "data": str(i)},
            )
            if answer.status_code == 200:
                samples.append((time.perf_counter() - started) * 1000)
            else:
                failed += 1

    await asyncio.gather(*(one(i, cp) for i, cp in enumerate(ids)))
    return samples, failed


def _line(label: str, samples: list[float], failed: int) -> str:
    if not samples:
        return f"{label}: no answer ({failed} failed)"
    return (
        f"{label}: n={len(samples)} p50={statistics.median(samples):.1f} ms "
        f"p99={_pct(samples, 0.99):.1f} ms failed={failed}"
    )


async def run(args: argparse.Namespace) -> None:
    configure_logging(LogFormat.CONSOLE, "warning")
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    dsn = await start_embedded(work / "data")
    await run_migrations(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    _, key = await api_keys.create(pool, "bench", "operator")
    port = _free_port()
    nodes = [Node(i + 1, dsn, port, args.drain_seconds, work) for i in range(args.nodes)]
    for node in nodes:
        node.log_level = args.log_level
    fleet = LightFleet(f"ws://127.0.0.1:{port}/ocpp", args.chargers, args.chargers / args.rate)
    try:
        first = nodes[:1] if args.fill_first else nodes
        await asyncio.gather(*(node.start() for node in first))
        started = time.monotonic()
        await fleet.start(connect_rate=args.connect_rate)
        await _until(_async(lambda: not fleet.offline()), args.timeout)
        if args.fill_first:  # the others join a node that holds the whole fleet
            await asyncio.gather(*(node.start() for node in nodes[1:]))
        print(f"{args.chargers} chargers (half 1.6J, half 2.0.1) on {args.nodes} nodes, one port; "
              f"all booted in {time.monotonic() - started:.1f} s")  # fmt: skip
        holders = await _holders(pool)
        for node in nodes:
            held = sum(1 for h in holders.values() if h == node.node_id)
            print(f"  {node.node_id}: {held} chargers")

        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            await _commands(http, nodes, holders, 20, remote=False)  # warm up
            local = await _commands(http, nodes, holders, args.commands, remote=False)
            print(_line("command via the holding node's API ", *local))
            forwarded = await _commands(http, nodes, holders, args.commands, remote=True)
            print(_line("command via another node's API    ", *forwarded))

        await _rolling_restart(nodes[0], fleet, pool, args)
        await _kill_9(nodes[1 % len(nodes)], fleet, pool, args)
        print(f"fleet totals: {fleet.stats.sent} calls, {fleet.stats.answered} answered, "
              f"{fleet.stats.unanswered} unanswered (resent), {fleet.stats.errors} CALLERRORs; "
              f"{fleet.stats.timeouts} timeouts; unexpected {fleet.stats.failures}; "
              f"socket closes by code {dict(sorted(fleet.stats.close_codes.items()))}")  # fmt: skip
    finally:
        await fleet.stop()
        for node in nodes:
            if node.process is not None and node.process.returncode is None:
                node.process.send_signal(signal.SIGINT)
        await asyncio.gather(*(n.wait() for n in nodes if n.process is not None))
        await pool.close()
        stop_embedded(work / "data")
        if args.keep_logs:
            print(f"node logs: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


async def _rolling_restart(
    node: Node, fleet: LightFleet, pool: asyncpg.Pool, args: argparse.Namespace
) -> None:
    holders = await _holders(pool)
    moving = {cp for cp, h in holders.items() if h == node.node_id}
    chargers = [c for c in fleet.chargers if c.id in moving]
    unanswered, sent = fleet.stats.unanswered, fleet.stats.sent
    lagging = fleet.stats.unanswered_sent_lagging
    assert node.process is not None
    started = time.monotonic()
    node.process.send_signal(signal.SIGTERM)
    moved = asyncio.create_task(_back_online(chargers, pool, node.node_id, started, args.timeout))
    await asyncio.wait_for(node.wait(), args.drain_seconds + 60)
    drained = time.monotonic() - started
    back = await moved
    print(
        f"rolling restart of {node.node_id} ({len(chargers)} chargers, drain window "
        f"{args.drain_seconds:g} s): exited after {drained:.1f} s; "
        f"{fleet.stats.sent - sent} calls meanwhile, "
        f"{fleet.stats.unanswered - unanswered} unanswered (resent; "
        f"{fleet.stats.unanswered_sent_lagging - lagging} of them sent while the fleet had "
        "the node's frames unread); all back online on the "
        f"other nodes {back:.1f} s after SIGTERM"
    )
    await node.start()  # the "restart" of the rolling restart


async def _kill_9(
    node: Node, fleet: LightFleet, pool: asyncpg.Pool, args: argparse.Namespace
) -> None:
    holders = await _holders(pool)
    moving = {cp for cp, h in holders.items() if h == node.node_id}
    chargers = [c for c in fleet.chargers if c.id in moving]
    assert node.process is not None
    started = time.monotonic()
    node.process.kill()
    back = await _back_online(chargers, pool, node.node_id, started, args.timeout)
    await node.wait()
    print(
        f"kill -9 of {node.node_id} ({len(chargers)} chargers): all back online on the other "
        f"nodes {back:.1f} s after the kill"
    )


async def _back_online(
    chargers: list[LightCharger], pool: asyncpg.Pool, gone: str, since: float, within: float
) -> float:
    """Until every charger re-booted after ``since`` and Postgres shows it on a live node."""
    ids = [c.id for c in chargers]

    async def settled() -> bool:
        if any(not c.online.is_set() or c.online_since < since for c in chargers):
            return False
        on_live = await pool.fetchval(
            "SELECT count(*) FROM chargers WHERE charge_point_id = ANY($1) AND connected "
            "AND node_id IS DISTINCT FROM $2",
            ids,
            gone,
        )
        return bool(on_live == len(ids))

    try:
        await _until(settled, within, step=0.5)
    except TimeoutError:
        late = [c.id for c in chargers if not c.online.is_set() or c.online_since < since]
        rows = await pool.fetch(
            "SELECT charge_point_id, connected, node_id FROM chargers "
            "WHERE charge_point_id = ANY($1) AND NOT (connected AND node_id IS DISTINCT FROM $2)",
            ids,
            gone,
        )
        stuck = [tuple(r) for r in rows[:5]]
        print(f"not back: {len(late)} not re-booted {late[:5]}; in Postgres {stuck}")
        raise
    return time.monotonic() - since


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="fleet calls/s in all")
    parser.add_argument("--connect-rate", type=float, default=500.0, help="new sockets/s")
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--drain-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="bound of each phase")
    parser.add_argument(
        "--fill-first",
        action="store_true",
        help="connect the fleet to the first node alone, then start the others: "
        "the rolling restart drains a node holding every charger",
    )
    parser.add_argument("--log-level", default="warning", help="of the nodes")
    parser.add_argument("--keep-logs", action="store_true", help="keep the nodes' logs")
    args = parser.parse_args()
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
