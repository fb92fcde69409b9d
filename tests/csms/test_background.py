"""Background tasks are held until done, cancelled together, and a failure is logged."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from csms.background import BackgroundTasks


async def test_a_failed_task_is_logged_when_it_ends() -> None:
    tasks = BackgroundTasks()

    async def fail() -> None:
        raise ValueError("no answer")

    with capture_logs() as logs:
        task = tasks.spawn(fail())
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    failed = [entry for entry in logs if entry["event"] == "background.task_failed"]
    assert len(failed) == 1 and isinstance(failed[0]["exc_info"], ValueError)


async def test_cancel_all_ends_what_still_runs_without_logging_it() -> None:
    tasks = BackgroundTasks()
    task = tasks.spawn(asyncio.sleep(60))
    with capture_logs() as logs:
        await tasks.cancel_all()
    assert task.cancelled()
    assert not [entry for entry in logs if entry["event"] == "background.task_failed"]
