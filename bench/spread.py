"""How evenly do worker processes on one port share the chargers? (csms --workers N)

    python -m bench.spread [--connections 1000] [--workers 2 3 4] [--rounds 3]

Three ways for N processes to share one listening port, each measured with the
same fleet of TCP connections from 127.0.0.1 (kept open, as chargers do), over
which each connection sends one line and waits for the answer:

* ``reuseport``: each worker has its own listening socket with SO_REUSEPORT; the
  kernel picks the socket by a hash of the 4-tuple (what ``csms --workers`` does);
* ``shared``: one listening socket inherited by every worker, whichever worker's
  event loop calls accept() first gets the connection (gunicorn/uvicorn style);
* ``acceptor``: one process accepts and hands each socket to a worker, round
  robin, over a Unix socket (SCM_RIGHTS); even by construction, so what it
  shows is what the extra hop costs.

It prints, per method and worker count, the connections per worker (spread:
largest share / fair share) and the connect-to-answer time p50/p99.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import multiprocessing
import os
import signal
import socket
import statistics
import time
from multiprocessing.connection import Connection

_CONTEXT = multiprocessing.get_context("fork")  # workers start before any loop exists


def _listener(port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: int) -> None:
    await reader.readline()
    writer.write(f"{me}\n".encode())
    await writer.drain()
    await reader.read()  # keep the connection until the client closes it
    writer.close()


def _worker(
    me: int, method: str, port: int, shared: socket.socket | None, pipe: Connection
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        if method == "acceptor":
            fds_in = socket.socket(fileno=pipe.fileno())  # a Unix socket from the acceptor
            fds_in.setblocking(False)
            done = asyncio.Event()
            serving: set[asyncio.Task[None]] = set()  # referenced, or the GC ends them

            def receive() -> None:
                try:
                    _, fds, _, _ = socket.recv_fds(fds_in, 1, 1)
                except BlockingIOError:
                    return
                if not fds:
                    done.set()
                    return
                conn = socket.socket(fileno=fds[0])
                conn.setblocking(False)
                task = loop.create_task(_serve_accepted(conn, me))
                serving.add(task)
                task.add_done_callback(serving.discard)

            loop.add_reader(fds_in.fileno(), receive)
            await done.wait()
            return
        sock = shared if shared is not None else _listener(port, reuse_port=True)
        server = await asyncio.start_server(lambda r, w: _answer(r, w, me), sock=sock)
        pipe.send("ready")
        await loop.run_in_executor(None, pipe.recv)  # stop
        server.close()

    asyncio.run(main())


async def _serve_accepted(conn: socket.socket, me: int) -> None:
    reader, writer = await asyncio.open_connection(sock=conn)
    await _answer(reader, writer, me)


def _acceptor(port: int, outs: list[socket.socket], stop: Connection) -> None:
    sock = _listener(port, reuse_port=False)
    sock.setblocking(True)
    sock.settimeout(0.2)
    stop.send("ready")
    turn = 0
    while not stop.poll():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        socket.send_fds(outs[turn % len(outs)], [b"s"], [conn.fileno()])
        conn.close()
        turn += 1
    for out in outs:
        out.sendmsg([b"e"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i"))])


async def _fleet(port: int, connections: int, parallel: int) -> tuple[list[int], list[float]]:
    owners: list[int] = []
    seconds: list[float] = []
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            owners.append(int(await reader.readline()))
            seconds.append(time.perf_counter() - started)
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(connections)))
    for writer in writers:
        writer.close()
    return owners, seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(method: str, workers: int, connections: int) -> tuple[list[int], list[float]]:
    port = _free_port()
    shared = _listener(port, reuse_port=False) if method == "shared" else None
    processes, controls = [], []
    acceptor = None
    fd_pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
    for me in range(workers):
        parent_end, child_end = _CONTEXT.Pipe()
        if method == "acceptor":
            child_end = Connection(os.dup(fd_pairs[me][1].fileno()))
        process = _CONTEXT.Process(target=_worker, args=(me, method, port, shared, child_end))
        process.start()
        processes.append(process)
        controls.append(parent_end)
    if method == "acceptor":
        stop_parent, stop_child = _CONTEXT.Pipe()
        acceptor = _CONTEXT.Process(
            target=_acceptor, args=(port, [a for a, _ in fd_pairs], stop_child)
        )
        acceptor.start()
        stop_parent.recv()
    else:
        for control in controls:
            control.recv()
    try:
        owners, seconds = asyncio.run(_fleet(port, connections, parallel=100))
    finally:
        if acceptor is not None:
            stop_parent.send("stop")
            acceptor.join(5)
        else:
            for control in controls:
                control.send("stop")
        for process in processes:
            process.join(5)
            if process.is_alive():
                os.kill(process.pid or 0, signal.SIGKILL)
        if shared is not None:
            shared.close()
        for a, b in fd_pairs:
            a.close()
            b.close()
    counts = [owners.count(me) for me in range(workers)]
    return counts, seconds


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["reuseport", "shared", "acceptor"])
    args = parser.parse_args()
    print(f"{args.connections} connections from 127.0.0.1, kept open; {args.rounds} rounds each")
    print(
        f"{'method':<10} {'N':>2}  {'per worker (each round)':<44} {'spread':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    for method in args.methods:
        for workers in args.workers:
            rounds, spreads, seconds = [], [], []
            for _ in range(args.rounds):
                counts, took = measure(method, workers, args.connections)
                rounds.append("/".join(map(str, counts)))
                spreads.append(max(counts) / (args.connections / workers))
                seconds.extend(took)
            print(
                f"{method:<10} {workers:>2}  {' '.join(rounds):<44} {max(spreads):>6.3f} "
                f"{statistics.median(seconds) * 1000:>7.2f} "
                f"{_percentile(seconds, 0.99) * 1000:>7.2f}"
            )


if __name__ == "__main__":
    main()
