"""Tasks a service starts and does not wait for, cancelled together when it stops.

The event loop keeps only weak references to tasks, so a task started and
forgotten can be collected mid-run; :class:`BackgroundTasks` holds each one
until it finishes, and :meth:`BackgroundTasks.cancel_all` ends those still
running at shutdown. A task that fails is logged (``background.task_failed``)
when it ends, instead of asyncio's "exception was never retrieved" at collection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as a task held until it is done."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background.task_failed", task=task.get_name(), exc_info=error)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for each to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
