"""``csms --workers N``: one supervising process and N worker processes on one host.

The supervisor does what must happen once: it starts the embedded Postgres (when
no ``DATABASE_URL`` is set) and applies the migrations, and it reserves the OCPP,
wss and API ports. Then it starts N workers; each is a complete CSMS and a node
of the cluster (its own node id), listening on the same ports with SO_REUSEPORT
so that the kernel spreads chargers and API requests over them
(docs/workers.md has the measurements behind that choice).

A worker that dies is started again after a back-off (0.5 s doubling to 30 s,
reset after a minute of good health); its chargers reconnect meanwhile and the
kernel sends them to the workers still listening. SIGHUP replaces the workers
one at a time (a rolling restart on one host, e.g. after an upgrade). SIGTERM to
the supervisor drains every worker (csms.drain) and then stops Postgres; SIGINT
stops them at once. Workers get SIGTERM from the kernel if the supervisor itself dies
(PR_SET_PDEATHSIG), so that no worker outlives it; the next ``csms`` adopts the
Postgres that a killed supervisor leaves behind (csms.storage.embedded).

The workers write their metrics to one directory the supervisor prepares, so that
a scrape of ``/metrics`` on whichever worker shows the whole host
(csms.monitoring.metrics_workers); the supervisor tells it when a worker exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import psutil
import structlog

from csms import event_loop
from csms.config import Settings
from csms.listen import bound_port, reuse_port_sockets
from csms.logs import configure_logging
from csms.monitoring import metrics_workers
from csms.storage.database import resolve_dsn, run_migrations
from csms.storage.embedded import stop_embedded

log = structlog.get_logger(__name__)

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # a worker that ran this long starts the back-off afresh
STOP_GRACE = 30.0  # beyond the drain window, before a worker is killed
_PR_SET_PDEATHSIG = 1


def restart_delay(failures: int) -> float:
    """Back-off before the ``failures``-th restart in a row (1, 2, ...)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, failures - 1))


@dataclass
class _Slot:
    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


def worker_node_id(explicit: str | None, index: int) -> str:
    """``<CSMS_NODE_ID>-<n>`` if the operator named the node, else ``<host>-<pid>``."""
    if explicit:
        return f"{explicit}-{index + 1}"
    return f"{socket.gethostname()}-{os.getpid()}"


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM (a drain) when the supervisor dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_main(settings: Settings, index: int, explicit_node_id: str | None, parent: int) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter)."""
    _die_with_parent(parent)
    from csms.app import Csms

    settings = dataclasses.replace(settings, node_id=worker_node_id(explicit_node_id, index))
    configure_logging(settings.log_format, settings.log_level)
    structlog.contextvars.bind_contextvars(worker=index + 1)
    try:
        event_loop.run(Csms(settings).run(), settings.event_loop)
    except KeyboardInterrupt:
        pass


class Supervisor:
    def __init__(self, settings: Settings, explicit_node_id: str | None = None) -> None:
        self.settings = settings
        self.explicit_node_id = explicit_node_id
        self._context = multiprocessing.get_context("spawn")  # no fork of a running loop
        self._slots = [_Slot(i) for i in range(settings.workers)]
        self._stop: signal.Signals | None = None
        self._hurry = False
        self._reload = False  # SIGHUP: replace the workers one at a time
        self._wake_r, self._wake_w = os.pipe()
        self._reserved: list[socket.socket] = []
        self._embedded = False
        self._metrics_dir: Path | None = None  # the workers' metric files (one /metrics)
        self._metrics_dir_ours = False

    def _prepare(self) -> Settings:
        """Database once, ports once; the settings every worker runs with."""
        dsn = asyncio.run(resolve_dsn(self.settings))
        self._embedded = not self.settings.database_url  # started here: stopped here
        if self.settings.migrate_on_start:
            applied = asyncio.run(run_migrations(dsn))
            log.info("db.schema_ready", migrations_applied=applied)
        hosts = {
            "port": self.settings.host,
            "api_port": self.settings.api_host or self.settings.host,
            "tls_port": self.settings.host,
        }
        ports = {"port": self.settings.port, "api_port": self.settings.api_port}
        if self.settings.tls_cert_file is not None:
            ports["tls_port"] = self.settings.tls_port
        for name, port in ports.items():
            # Bound, never listening: holds the port (and fixes a port 0) for the workers.
            reserved = reuse_port_sockets(hosts[name], port)
            self._reserved.extend(reserved)
            ports[name] = bound_port(reserved)
        return dataclasses.replace(
            self.settings,
            database_url=dsn,
            migrate_on_start=False,
            workers=1,
            reuse_port=True,
            **ports,  # type: ignore[arg-type]
        )

    def _spawn(self, slot: _Slot, settings: Settings) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(settings, slot.index, self.explicit_node_id, os.getpid()),
            name=f"csms-worker-{slot.index + 1}",
        )
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        log.info("supervisor.worker_started", worker=slot.index + 1, pid=process.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._stop is None:
            self._stop = signal.Signals(signum)
        else:
            self._hurry = True
        os.write(self._wake_w, b"!")

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self._reload = True
        os.write(self._wake_w, b"!")

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_reload)
        try:
            # Before the first worker starts: a worker picks the mode up at its first import.
            self._metrics_dir, self._metrics_dir_ours = metrics_workers.prepare()
            try:
                worker_settings = self._prepare()
            except OSError as error:  # a port taken by a process not sharing it
                print(f"csms: cannot listen: {error}", file=sys.stderr)
                return 1
            for slot in self._slots:
                self._spawn(slot, worker_settings)
            print(
                f"CSMS supervisor (pid {os.getpid()}): {len(self._slots)} workers, chargers on "
                f"port {worker_settings.port}, operator API on port {worker_settings.api_port}",
                flush=True,
            )
            self._watch(worker_settings)
            self._stop_workers()
        finally:
            for sock in self._reserved:
                sock.close()
            if self._metrics_dir is not None and self._metrics_dir_ours:
                metrics_workers.remove(self._metrics_dir)
            if self._embedded:
                stop_embedded(self.settings.data_dir)
        log.info("supervisor.stopped")
        return 0

    def _watch(self, settings: Settings) -> None:
        while self._stop is None:
            now = time.monotonic()
            waits: list[float] = []
            for slot in self._slots:
                process = slot.process
                if process is not None and not process.is_alive():
                    self._on_exit(slot, process, now)
                if slot.restart_at is not None:
                    if now >= slot.restart_at:
                        self._spawn(slot, settings)
                    else:
                        waits.append(slot.restart_at - now)
            sentinels: list[object] = [self._wake_r]
            sentinels += [s.process.sentinel for s in self._slots if s.process is not None]
            multiprocessing.connection.wait(sentinels, timeout=min([*waits, 1.0]))  # type: ignore[arg-type]
            self._drain_wakeups()
            if self._reload and self._stop is None:
                self._reload = False
                self._rolling_restart(settings)

    def _rolling_restart(self, settings: Settings) -> None:
        """Replace each worker in turn by a fresh process (which loads the code on disk).

        One at a time: the worker drains (its chargers reconnect to the others), then
        its successor starts under the same node id, and the next worker goes only
        once the successor listens. N-1 workers serve throughout.
        """
        log.info("supervisor.rolling_restart", workers=len(self._slots))
        for slot in self._slots:
            old = slot.process
            if old is not None and old.is_alive():
                _send(old, signal.SIGTERM)
                deadline = time.monotonic() + self.settings.drain_seconds + STOP_GRACE
                while old.is_alive() and time.monotonic() < deadline and self._stop is None:
                    old.join(0.2)
                if self._stop is not None:
                    return  # stopping: _stop_workers takes over
                if old.is_alive():
                    log.error("supervisor.worker_killed", pid=old.pid)
                    old.kill()
                old.join()
                self._forget_metrics_of(old)
            slot.failures = 0
            self._spawn(slot, settings)
            if not self._wait_listening(slot, settings.port):
                log.error("supervisor.rolling_restart_stopped", worker=slot.index + 1)
                return
        log.info("supervisor.rolling_restart_done")

    def _wait_listening(self, slot: _Slot, port: int, within: float = 90.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self._stop is None:
            process = slot.process
            if process is None or not process.is_alive() or process.pid is None:
                return False
            try:
                sockets = psutil.Process(process.pid).net_connections("tcp")
            except psutil.Error:
                return False
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets):
                return True
            time.sleep(0.1)
        return False

    def _forget_metrics_of(self, process: BaseProcess) -> None:
        """A worker exited: its gauges leave the node's figures; its counters stay in them."""
        if self._metrics_dir is not None and process.pid is not None:
            metrics_workers.worker_exited(self._metrics_dir, process.pid)

    def _on_exit(self, slot: _Slot, process: BaseProcess, now: float) -> None:
        process.join()
        self._forget_metrics_of(process)
        slot.process = None
        if now - slot.started_at >= HEALTHY_AFTER or process.exitcode == 0:
            slot.failures = 0
        if process.exitcode == 0:  # drained on its own SIGTERM (`kill <worker pid>`)
            slot.restart_at = now + BACKOFF_FIRST
            log.info("supervisor.worker_exited", worker=slot.index + 1, pid=process.pid)
            return
        slot.failures += 1
        delay = restart_delay(slot.failures)
        slot.restart_at = now + delay
        log.error(
            "supervisor.worker_died",
            worker=slot.index + 1,
            pid=process.pid,
            exitcode=process.exitcode,
            restart_in_s=delay,
        )

    def _drain_wakeups(self) -> None:
        os.set_blocking(self._wake_r, False)
        try:
            while os.read(self._wake_r, 64):
                pass
        except BlockingIOError:
            pass

    def _stop_workers(self) -> None:
        """Forward the stop signal (SIGTERM: drain), wait, kill what outlives the grace."""
        sig = self._stop or signal.SIGTERM
        running = [s.process for s in self._slots if s.process is not None and s.process.is_alive()]
        log.info("supervisor.stopping", signal=sig.name, workers=len(running))
        for process in running:
            _send(process, sig)
        hurried = False
        deadline = time.monotonic() + self.settings.drain_seconds + STOP_GRACE
        for process in running:
            while process.is_alive() and time.monotonic() < deadline:
                if self._hurry and not hurried:  # a second signal: workers close all now
                    hurried = True
                    for other in running:
                        _send(other, signal.SIGTERM)
                process.join(0.2)
            if process.is_alive():
                log.error("supervisor.worker_killed", pid=process.pid)
                process.kill()
                process.join()


def _send(process: BaseProcess, sig: signal.Signals) -> None:
    if process.pid is not None and process.is_alive():
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            pass


def run_supervisor(settings: Settings, explicit_node_id: str | None = None) -> int:
    if sys.platform != "linux":
        print("csms: --workers needs Linux (SO_REUSEPORT spreading)", file=sys.stderr)
        return 2
    return Supervisor(settings, explicit_node_id).run()
