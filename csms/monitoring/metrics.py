"""Prometheus metrics of the CSMS process (served at ``GET /metrics`` on the API port).

Every metric lives in :data:`REGISTRY`, a registry owned by this module (not
the library's default one, so that tests and embedding applications see only
CSMS metrics, plus the process collector). Label sets stay bounded: never a
label per charger, token or transaction. Actions are the ones the OCPP
versions define (anything else counts as ``"unknown"``), error codes are the
RPC error codes (anything else is ``"other"``).

Other subsystems update metrics through the functions here, not by reaching
into the objects, so the label rules live in one place:

* fault detection (alerts) calls :func:`set_open_alerts` with the number of
  open alerts per ``(severity, rule)`` whenever that changes (after commit);
  the gauge is ``csms_alerts_open{severity, rule}``.
* live monitoring calls :func:`set_power_by_site` at scrape time; the gauge is
  ``csms_power_drawn_watts{site}`` (site ids are few; ``"none"`` for chargers
  placed in no site).

Under ``csms --workers N`` every worker writes these values to a shared
directory and a scrape merges them (:mod:`csms.monitoring.metrics_workers`);
each gauge's ``multiprocess_mode`` says how: ``livesum`` for what each worker
has of its own, ``livemax`` for figures one worker (a lease holder) exports
while the others export 0, and for per-process maxima and flags.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from csms.monitoring import metrics_workers

_log = structlog.get_logger(__name__)
REGISTRY: Final = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU, memory, open file descriptors of the CSMS

# Values every bounded label falls back to.
UNKNOWN_ACTION: Final = "unknown"
OTHER_CODE: Final = "other"
NO_SITE: Final = "none"  # the site label of chargers placed in no site

_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)

# -- connectivity ------------------------------------------------------------------

CHARGERS_CONNECTED: Final = Gauge(
    "csms_chargers_connected",
    "Chargers with a live WebSocket connection to this node, by OCPP version",
    ["protocol", "node"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CHARGERS_WENT_OFFLINE: Final = Counter(
    "csms_chargers_went_offline",
    "Times a charger was marked offline, by why (socket closed, or silent too long)",
    ["reason"],
    registry=REGISTRY,
)

# -- OCPP messages -----------------------------------------------------------------

MESSAGES: Final = Counter(
    "csms_ocpp_messages",
    "OCPP CALLs by direction (in: charger to CSMS, out: CSMS to charger), action and outcome "
    "(ok, call_error, timeout, closed)",
    ["direction", "action", "outcome"],
    registry=REGISTRY,
)
HANDLER_SECONDS: Final = Histogram(
    "csms_ocpp_handler_seconds",
    "Time from receiving a charger's CALL to sending its answer, by action",
    ["action"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CALL_ERRORS: Final = Counter(
    "csms_ocpp_call_errors",
    "CALLERRORs by direction (sent: the CSMS answered with one, received: a charger did) "
    "and error code",
    ["direction", "code"],
    registry=REGISTRY,
)
VALUES_SANITISED: Final = Counter(
    "csms_ocpp_values_sanitised",
    "Values a charger sent that could not be stored as sent: 'nul' replaced in a string, "
    "'dropped' left out of a transaction end (csms.poison, docs/reliability.md)",
    ["kind"],
    registry=REGISTRY,
)
AUTHORIZE_FROM_CACHE: Final = Counter(
    "csms_authorize_from_cache",
    "Authorize requests answered from a recent decision while the database was down",
    registry=REGISTRY,
)
DUPLICATES: Final = Counter(
    "csms_ocpp_duplicates",
    "Messages a charger resent that were answered again but not stored again, by action",
    ["action"],
    registry=REGISTRY,
)

# -- the process's event loop (csms/loop_lag.py) -------------------------------------

EVENT_LOOP_LAG: Final = Histogram(
    "csms_event_loop_lag_seconds",
    "How late a task that only sleeps woke up: time the event loop was held by other work "
    "(measured every 50 ms in each CSMS process)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
EVENT_LOOP_LAG_MAX: Final = Gauge(
    "csms_event_loop_lag_max_seconds",
    "The largest event-loop lag of this process in the last 60 s",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
EVENT_LOOP_STALLS: Final = Counter(
    "csms_event_loop_stalls",
    "Stalls of the event loop the stall tracer caught (csms/loop_stalls.py), by kind: gc, "
    "busy (the loop computed) or off-cpu (the process did not get the CPU, or blocked)",
    ["kind"],
    registry=REGISTRY,
)
GC_PAUSE: Final = Histogram(
    "csms_gc_pause_seconds",
    "Garbage collector pauses of the event loop's thread, by generation (csms/loop_stalls.py)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
GC_CPU: Final = Counter(
    "csms_gc_cpu_seconds",
    "CPU time the event loop's thread spent in the garbage collector, by generation",
    ["generation"],
    registry=REGISTRY,
)

# -- storage and fan-out -------------------------------------------------------------

DB_WRITE_SECONDS: Final = Histogram(
    "csms_db_write_seconds",
    "Duration of a database write transaction, by what it records",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
DB_BATCH_SIZE: Final = Histogram(
    "csms_db_batch_size",
    "Rows written per batched statement, by what it writes",
    ["operation"],
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
DB_POOL_CONNECTIONS: Final = Gauge(
    "csms_db_pool_connections",
    "Connections of a database pool (chargers' or api), by state: busy (acquired) or idle; "
    "busy at the pool's maximum means messages queue for a connection",
    ["pool", "state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
GROUP_COMMIT_FALLBACKS: Final = Counter(
    "csms_group_commit_fallbacks_total",
    "Group-commit batches that failed and were written one message per transaction",
    registry=REGISTRY,
)
OUTBOX_UNPUBLISHED: Final = Gauge(
    "csms_outbox_unpublished_events",
    "Events in the outbox not yet published to Kafka",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
OUTBOX_LAG_SECONDS: Final = Gauge(
    "csms_outbox_lag_seconds",
    "Age of the oldest unpublished outbox event (0 when none is waiting)",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

CLUSTER_LEADER: Final = Gauge(
    "csms_cluster_leader",
    "1 on the node that runs this once-per-cluster job (and exports its cluster-wide metrics)",
    ["lease"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

# -- charging ----------------------------------------------------------------------

SESSIONS_ACTIVE: Final = Gauge(
    "csms_sessions_active",
    "Charging sessions started and not yet ended",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
POWER_W: Final = Gauge(
    "csms_power_drawn_watts",
    "Power drawn by active sessions (last reported sample each), by site",
    ["site"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
ENERGY_DELIVERED_WH: Final = Counter(
    "csms_energy_delivered_wh",
    "Energy delivered to vehicles, from increases of the sessions' energy registers",
    registry=REGISTRY,
)

# -- alerts (set by fault detection) -------------------------------------------------

ALERTS_OPEN: Final = Gauge(
    "csms_alerts_open",
    "Open alerts by severity and rule",
    ["severity", "rule"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

# -- notifications -----------------------------------------------------------------

STREAM_SUBSCRIBERS: Final = Gauge(
    "csms_stream_subscribers",
    "Clients connected to the event stream (GET /api/v1/stream)",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES: Final = Counter(
    "csms_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, failed, gave_up)",
    ["outcome"],
    registry=REGISTRY,
)


def set_open_alerts(counts: Mapping[tuple[str, str], int]) -> None:
    """Replace ``csms_alerts_open`` with ``counts``: ``{(severity, rule): open alerts}``.

    Pass every open (severity, rule) pair each time; pairs left out drop to
    zero (they stay exported, so a graph shows the alert clearing).
    """
    for labels in _known_alert_labels():
        if labels not in counts:
            ALERTS_OPEN.labels(*labels).set(0)
    for (severity, rule), count in counts.items():
        ALERTS_OPEN.labels(severity, rule).set(count)


def set_power_by_site(watts: Mapping[str, float]) -> None:
    """Replace ``csms_power_drawn_watts`` with ``watts``: ``{site label: W}``.

    A site left out (deleted since the last call) is removed from the export
    rather than kept at 0, so deleted sites do not accumulate.
    """
    exported = {sample.labels["site"] for metric in POWER_W.collect() for sample in metric.samples}
    for site in exported - watts.keys():
        # With workers the value stays in this worker's file after remove(): 0 there, at least.
        POWER_W.labels(site).set(0)
        POWER_W.remove(site)
    for site, power_w in watts.items():
        POWER_W.labels(site).set(power_w)


def _known_alert_labels() -> list[tuple[str, str]]:
    return [
        (sample.labels["severity"], sample.labels["rule"])
        for metric in ALERTS_OPEN.collect()
        for sample in metric.samples
    ]


@functools.cache
def bound(metric: Counter | Gauge | Histogram, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (the per-message path).

    ``labels()`` validates and locks on every call (three times the cost of the
    increment). Only for metrics whose label sets are bounded and never removed
    (not ``csms_power_drawn_watts``): a removed child would stay cached.
    """
    return metric.labels(*labels)


def bounded_action(action: object, known: frozenset[str]) -> str:
    """``action`` if the protocol version defines it, else ``"unknown"``."""
    return action if isinstance(action, str) and action in known else UNKNOWN_ACTION


_KNOWN_CODES: Final = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormatViolation",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurrenceConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
        "RpcFrameworkError",
        "MessageTypeNotSupported",
    }
)


def bounded_code(code: str) -> str:
    """An RPC error code as sent on the wire, or ``"other"`` for anything a charger made up."""
    return code if code in _KNOWN_CODES else OTHER_CODE


@asynccontextmanager
async def db_write(operation: str) -> AsyncIterator[None]:
    """Time a write transaction into ``csms_db_write_seconds{operation}``.

    Also notes whether the database answers: ``csms_db_degraded`` is 1 from the
    first write that fails for want of a database until the next one succeeds,
    with one log line at each change (docs/reliability.md).
    """
    started = time.perf_counter()
    try:
        yield
    except BaseException as error:
        if db_unreachable(error):
            _set_degraded(True, error)
        raise
    else:
        _set_degraded(False, None)
    finally:
        bound(DB_WRITE_SECONDS, operation).observe(time.perf_counter() - started)


DB_DEGRADED: Final = Gauge(
    "csms_db_degraded",
    "1 while the database cannot be reached (writes fail; Authorize may be answered from "
    "the short-lived cache), 0 once a write succeeds again",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
_UNREACHABLE_STATES = {"57P01", "57P02", "57P03", "55000", "53300", "57014"}


def db_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database is down or unreachable, not that data is wrong."""
    if isinstance(
        error,
        OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError,
    ):
        return True
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("08") or state in _UNREACHABLE_STATES)


_degraded = False


def _set_degraded(degraded: bool, error: BaseException | None) -> None:
    global _degraded
    if degraded == _degraded:
        return
    _degraded = degraded
    DB_DEGRADED.set(1 if degraded else 0)
    if degraded:
        _log.error("db.degraded", error=f"{type(error).__name__}: {error}"[:300])
    else:
        _log.warning("db.recovered")


def exposition() -> bytes:
    """The text exposition format of every metric in :data:`REGISTRY`.

    Under ``--workers N``: of every worker of the host, merged (``process_*`` once per
    worker, labelled with its pid).
    """
    if metrics_workers.enabled():
        return metrics_workers.exposition()
    return generate_latest(REGISTRY)
