"""Recording a charger's message exactly once, when two copies of it race.

Each recording method of :class:`csms.central.CentralSystem` first checks
whether its event is stored (a resend, :mod:`csms.dedupe`); two copies handled
at once (the old connection still busy after a reconnect) both miss it, and
the second trips the unique ``event_id``. :func:`once` runs the method again:
it then sees the first copy and answers as for a resend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg
import structlog

from csms.events import Event
from csms.monitoring import metrics
from csms.storage import event_log

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def once(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a recording method again if a concurrent copy of its message won the race."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != event_log.EVENT_ID_CONSTRAINT:
                raise
            return await method(*args, **kwargs)

    return wrapper


def note_duplicate(event: Event) -> None:
    """A resent message: logged and counted, not stored again."""
    log.info("message.duplicate_not_stored", event_type=event.type, event_id=str(event.event_id))
    metrics.DUPLICATES.labels(event.type).inc()
