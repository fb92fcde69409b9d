"""Adaptive group commit: a lone write is written at once, a busy lane still collects.

Real Postgres. A lane's smoothed gap between writes starts at (and counts at
most) one second, so a window under a second is what adaptivity can skip;
``unwaited`` counts the batches written without waiting.
"""

from __future__ import annotations

import asyncio
import functools

import asyncpg

from csms.storage.group_commit import GroupCommitter, Write
from tests.csms.test_group_commit import append_status, commit_waiting, commits_held, status_event
from tests.waiting import eventually


def status_write(cp: str, minute: int) -> Write[str]:
    return Write(cp, functools.partial(append_status, event=status_event(cp, minute)))


async def test_a_lone_write_is_written_at_once_and_answered_only_after_commit(
    database_dsn: str,
) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.9, max_batch=100, lanes=1, adaptive=True)
        async with commits_held(database_dsn) as holder:
            answered = asyncio.create_task(committer.submit(status_write("CP-ALONE", 1)))
            await asyncio.wait_for(eventually(lambda: commit_waiting(holder)), 30)
            await asyncio.sleep(0.05)  # a wrong committer resolved the future before COMMIT
            assert not answered.done(), "answered while the commit was still waiting"
        await asyncio.wait_for(answered, 30)
        assert committer.unwaited == 1 and committer.batches == 1
        assert await pool.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await pool.close()


async def test_writes_of_one_loop_turn_share_the_batch_of_a_lone_lane(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        # Five at once into an idle lane: its smoothed gap (~0.6 s) is still far
        # above the window, so nothing waits; the writes of that turn share a batch.
        committer = GroupCommitter(pool, window=0.1, max_batch=100, lanes=1, adaptive=True)
        writes = [committer.submit(status_write(f"CP-{n}", n)) for n in range(5)]
        await asyncio.wait_for(asyncio.gather(*writes), 30)
        assert committer.batches == 1 and committer.unwaited == 1
    finally:
        await pool.close()


async def test_writes_faster_than_the_window_are_collected(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        # Writes every few ms against a 0.9 s window: the first is written at once
        # (the lane was idle); from the second on the lane expects company and waits.
        committer = GroupCommitter(pool, window=0.9, max_batch=100, lanes=1, adaptive=True)
        writes = []
        for n in range(15):
            writes.append(asyncio.create_task(committer.submit(status_write(f"CP-{n}", n))))
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*writes), 60)
        assert committer.unwaited == 1
        assert committer.batches < len(writes)  # some batch held several writes
        assert await pool.fetchval("SELECT count(*) FROM events") == len(writes)
    finally:
        await pool.close()


async def test_without_adaptive_a_lone_write_waits_its_window(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.2, max_batch=100, lanes=1)
        first = asyncio.create_task(committer.submit(status_write("CP-A", 1)))
        await asyncio.sleep(0.01)  # well inside the window on any machine that runs the loop
        second = asyncio.create_task(committer.submit(status_write("CP-B", 2)))
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert committer.unwaited == 0
    finally:
        await pool.close()
