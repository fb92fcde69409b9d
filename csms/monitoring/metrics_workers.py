"""One ``/metrics`` for the whole host under ``csms --workers N``.

The workers share the API port, so a scrape lands on one of them at random.
So that every scrape shows the node, the workers run prometheus_client's
multiprocess mode: every metric value lives in a small memory-mapped file per
worker in one directory (``PROMETHEUS_MULTIPROC_DIR``), and the worker that is
scraped reads and merges every worker's files
(:class:`~prometheus_client.multiprocess.MultiProcessCollector`):

* counters and histograms are summed over the workers, the workers that ran
  before too: a worker that died or was replaced leaves its files behind, so a
  node's counter never goes back at a restart (Prometheus' ``rate()`` sees no
  reset at all);
* each gauge says how its workers' values combine (``multiprocess_mode`` in
  ``csms/monitoring/metrics.py``): ``livesum`` (connected chargers, pool
  connections, stream subscribers) or ``livemax`` (the lease holder's
  cluster-wide figures, which the other workers export as 0; loop lag; leader
  and degraded flags). ``live`` means only the running workers count: the
  supervisor removes a worker's gauge files when it exits (:func:`worker_exited`);
* ``process_*`` (CPU, memory, descriptors) of each running worker, labelled with
  its pid, read from ``/proc`` at the scrape (:class:`WorkerProcesses`).

Gauges that used to be computed at scrape time (connections, sessions, power,
outbox lag) cannot be computed for another process at scrape time, so in this
mode every worker also refreshes them every :data:`REFRESH_INTERVAL` seconds
(the scraped worker refreshes its own at the scrape, as before).

The mode is chosen when prometheus_client is imported (it reads the environment
variable then), which in a worker is before any of our code runs: the supervisor
sets the variable in its own environment before it spawns the workers
(:func:`prepare`). A single ``csms`` (``--workers 1``) never sets it and keeps
the plain in-memory values.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import values as _values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_INTERVAL: Final = 5.0  # s: how stale another worker's scrape-time gauges can be


def enabled() -> bool:
    """Whether this process writes its metrics to the shared directory (a worker)."""
    return bool(getattr(_values.ValueClass, "_multiprocess", False))


def prepare() -> tuple[Path, bool]:
    """Supervisor, before the first worker: the directory, emptied, and set in the environment.

    An operator's ``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied of the metric files a
    previous run left: they would be summed into this run's figures); otherwise a fresh
    temporary directory. Answers the path and whether it was created here (to remove at exit).
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return path, False
    path = Path(tempfile.mkdtemp(prefix="csms-metrics-"))
    os.environ[ENV] = str(path)  # inherited by the spawned workers
    return path, True


def worker_exited(path: Path, pid: int) -> None:
    """Supervisor: a worker is gone; its ``live*`` gauges stop counting (its counters stay)."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove(path: Path) -> None:
    """Supervisor, after the last worker: remove a directory :func:`prepare` created."""
    shutil.rmtree(path, ignore_errors=True)


# -- gauges read from a function -------------------------------------------------------

# Gauge.set_function() is read at collection time in this process only, which the
# multiprocess collector never does: in this mode such functions are called by
# refresh_functions() (at each refresh and scrape) and their value is set.
_functions: list[tuple[Any, Callable[[], float]]] = []


def gauge_function(child: Any, read: Callable[[], float]) -> None:
    """``child.set_function(read)``, in either mode (``child``: a labelled Gauge)."""
    if enabled():
        _functions.append((child, read))
        child.set(read())
    else:
        child.set_function(read)


def refresh_functions() -> None:
    for child, read in _functions:
        child.set(read())


# -- the workers' processes -------------------------------------------------------------


def running_workers(path: Path) -> list[int]:
    """Pids of the workers running now: a worker's ``live*`` gauge files are removed when
    it exits, and every worker has some (connected chargers), so their names tell."""
    pids = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = name.removesuffix(".db").rsplit("_", 1)[1]
        if pid.isdigit():
            pids.add(int(pid))
    return sorted(pids)


class WorkerProcesses:
    """``process_*`` of every running worker, labelled with its pid.

    prometheus_client's own process collector describes the process it runs in,
    here whichever worker was scraped. This reads each sibling worker from
    ``/proc`` (psutil) instead: a process that is no child of our supervisor (a pid
    reused after a worker died, before the supervisor noticed) is left out.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "User and system CPU time spent in seconds", labels=["pid"]
        )
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes", labels=["pid"]
        )
        fds = GaugeMetricFamily(
            "process_open_fds", "Number of open file descriptors", labels=["pid"]
        )
        started = GaugeMetricFamily(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            labels=["pid"],
        )
        supervisor = os.getppid()
        for pid in running_workers(self._path):
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    if process.ppid() != supervisor:
                        continue
                    times, rss = process.cpu_times(), process.memory_info().rss
                    open_fds, created = process.num_fds(), process.create_time()
            except psutil.Error:  # exited meanwhile
                continue
            label = [str(pid)]
            cpu.add_metric(label, times.user + times.system)
            memory.add_metric(label, rss)
            fds.add_metric(label, open_fds)
            started.add_metric(label, created)
        yield from (cpu, memory, fds, started)


def exposition() -> bytes:
    """Every worker's metrics merged, in the text format (the scraped worker serves this)."""
    refresh_functions()
    path = Path(os.environ[ENV])
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
    registry.register(WorkerProcesses(path))
    return generate_latest(registry)
