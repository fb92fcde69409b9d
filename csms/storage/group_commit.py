"""Group commit: many chargers' writes in one transaction per short window.

Most of what chargers send (meter values, transaction updates, status
notifications) is a handful of small writes; alone, each pays a pool
checkout, BEGIN, COMMIT and a WAL flush. The :class:`GroupCommitter` queues
such writes and runs the writes of many chargers in ONE transaction:

* **answer after commit** -- each caller awaits a future that is resolved
  only after the batch's COMMIT returned, so a charger is never answered
  before its data is stored (and the bus is told after that, by the caller);
* **per-charger order** -- all of a charger's writes not yet written are in
  one *lane* (one queue, one batch in flight at a time): a write joins the lane
  holding its charger's earlier writes, if any; a batch is written in
  submission order, and a charger's second write in one batch goes into a later
  *segment* (:func:`segments`), so its events get ids in the order sent;
* **one window per process** -- a charger with nothing in a lane joins the lane
  whose window is open (collecting), else an idle lane (opening a window), else
  the lane with the shortest queue: below saturation one window collects the
  writes of all chargers, not of a hash share of them (with ``--workers N``
  each process's lanes would otherwise split its half of the node's messages
  again); under load the lanes still commit side by side;
* **bounded** -- the first write of an idle lane waits ``window`` seconds for
  others; writes that queue while a batch commits are taken right after it
  (they have waited already); a batch holds at most ``max_batch`` writes;
* **adaptive** (``adaptive=True``) -- the first write of an idle lane waits
  the window only while the lane's writes come at least one per window (a
  smoothed gap between them); slower, none would join, and it is written at
  once, with whatever the same turn of the event loop submitted. Under load
  batches form from what queues during the previous commit either way;
* **poison isolation** -- if a batch fails, it is rolled back and each write
  is run again in a transaction of its own, in order: a poisoned message fails
  alone (its caller gets the error, the charger its CALLERROR), the others are
  stored. A database that cannot be reached fails the whole batch at once.

Writes of one kind in a segment can be written by one statement (a
:class:`BulkWriter`, e.g. the meter samples of fifty MeterValues as one
multi-row insert); any other write runs its own statements on the batch's
connection. Batched writes must create no events themselves (event ids come
from the message's context, :mod:`csms.dedupe`, which the batch task lacks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import structlog

from csms.monitoring import metrics

log = structlog.get_logger(__name__)

R = TypeVar("R")
Connection = Any  # a pooled asyncpg connection, inside the batch's transaction


class BulkWriter(Protocol):
    """Writes many items of one kind in one go; returns one result per item, in order.

    ``single_statement``: it writes them with one statement, atomic on its own, so a
    batch of only its items needs no BEGIN and COMMIT of its own.
    """

    name: str
    single_statement: bool

    async def __call__(self, conn: Connection, items: Sequence[Any]) -> Sequence[Any]: ...


@dataclass(eq=False, slots=True)
class Write(Generic[R]):
    """One message's writes: ``apply`` runs them on a connection inside a transaction.

    With ``bulk``, ``item`` is what that writer takes, and ``apply`` is only used
    when the write runs alone (a failed batch's fallback).
    """

    charge_point_id: str
    apply: Callable[[Connection], Awaitable[R]]
    bulk: BulkWriter | None = None
    item: Any = None
    future: asyncio.Future[R] | None = field(default=None, repr=False)


def segments(batch: Sequence[Write[Any]]) -> list[list[Write[Any]]]:
    """Cut a batch, keeping its order, into runs holding at most one write per charger.

    Within a run the writes are of different chargers, so they may be written
    in any order (bulk writers group them by kind); the runs are written one
    after the other, so a charger's writes are stored in the order submitted.
    """
    runs: list[list[Write[Any]]] = []
    chargers: set[str] = set()
    for write in batch:
        if not runs or write.charge_point_id in chargers:
            runs.append([])
            chargers = set()
        runs[-1].append(write)
        chargers.add(write.charge_point_id)
    return runs


def take_batch(
    queue: deque[Write[Any]], max_batch: int, dropped: list[Write[Any]] | None = None
) -> list[Write[Any]]:
    """Up to ``max_batch`` writes from the head of ``queue`` whose callers still wait
    (the others, taken off too, are appended to ``dropped``)."""
    batch: list[Write[Any]] = []
    while queue and len(batch) < max_batch:
        write = queue.popleft()
        if write.future is not None and not write.future.done():  # done: caller cancelled
            batch.append(write)
        elif dropped is not None:
            dropped.append(write)
    return batch


def one_statement(runs: Sequence[Sequence[Write[Any]]]) -> bool:
    """Whether a batch is written by one statement: one segment, one single-statement writer."""
    if len(runs) != 1:
        return False
    writers = {id(write.bulk) for write in runs[0]}
    bulk = runs[0][0].bulk
    return len(writers) == 1 and bulk is not None and bulk.single_statement


async def apply_segment(conn: Connection, run: Sequence[Write[Any]]) -> list[Any]:
    """Write one segment: bulk writes by kind in one call each, the others one by one."""
    results: list[Any] = [None] * len(run)
    by_writer: dict[int, tuple[BulkWriter, list[int]]] = {}
    for index, write in enumerate(run):
        if write.bulk is None:
            results[index] = await write.apply(conn)
        else:
            by_writer.setdefault(id(write.bulk), (write.bulk, []))[1].append(index)
    for writer, indexes in by_writer.values():
        metrics.DB_BATCH_SIZE.labels(f"group_commit_{writer.name}").observe(len(indexes))
        written = await writer(conn, [run[i].item for i in indexes])
        if len(written) != len(indexes):
            raise RuntimeError(f"bulk writer {writer.name} returned {len(written)} results")
        for index, result in zip(indexes, written, strict=True):
            results[index] = result
    return results


# The smoothed gap between a lane's writes: each new gap weighs this much, and a
# gap counts at most _GAP_CAP seconds (an idle hour is no more telling than a second).
_GAP_WEIGHT = 0.125
_GAP_CAP = 1.0


@dataclass(eq=False, slots=True)
class _Lane:
    queue: deque[Write[Any]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    collecting: bool = False  # its window is open: writes joining now share its batch
    last_write_at: float = float("-inf")  # loop time of the last submit
    gap: float = _GAP_CAP  # smoothed seconds between submits; idle to begin with

    def note_write(self, now: float) -> None:
        self.gap += (min(now - self.last_write_at, _GAP_CAP) - self.gap) * _GAP_WEIGHT
        self.last_write_at = now


class GroupCommitter:
    """Batches writes per lane; one batch transaction in flight per lane."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        window: float,
        max_batch: int,
        lanes: int = 2,
        acquire_timeout: float | None = None,
        adaptive: bool = False,
    ) -> None:
        if window <= 0 or max_batch < 1 or lanes < 1:
            raise ValueError("group commit needs a window > 0, max_batch >= 1 and lanes >= 1")
        self.pool = pool
        self.window = window
        self.max_batch = max_batch
        self.acquire_timeout = acquire_timeout
        self.adaptive = adaptive
        self._lanes = [_Lane() for _ in range(lanes)]
        # Per charger: the lane holding its writes not yet written, and how many.
        self._holders: dict[str, tuple[_Lane, int]] = {}
        self.batches = 0  # committed batch transactions (for tests and diagnostics)
        self.fallbacks = 0  # batches that failed and were written message by message
        self.single_statements = 0  # batches that were one statement, without BEGIN/COMMIT
        self.unwaited = 0  # batches of an idle lane written without waiting (adaptive)

    async def submit(self, write: Write[R]) -> R:
        """Queue ``write``; return its result once the transaction holding it committed."""
        loop = asyncio.get_running_loop()
        write.future = loop.create_future()
        lane = self._lane_for(write.charge_point_id)
        lane.note_write(loop.time())
        lane.queue.append(write)
        if lane.task is None:
            lane.collecting = True  # from now: the writes submitted in this turn join it
            lane.task = asyncio.create_task(self._run(lane), name="group_commit.lane")
        return await write.future

    def _lane_for(self, charge_point_id: str) -> _Lane:
        """The lane of the charger's unwritten writes, else the best to join (see above)."""
        held = self._holders.get(charge_point_id)
        if held is not None:
            lane, count = held
        else:
            lane, count = self._free_lane(), 0
        self._holders[charge_point_id] = (lane, count + 1)
        return lane

    def _free_lane(self) -> _Lane:
        for lane in self._lanes:
            if lane.collecting:
                return lane
        for lane in self._lanes:
            if lane.task is None:
                return lane
        return min(self._lanes, key=lambda lane: len(lane.queue))

    def _written(self, writes: Sequence[Write[Any]]) -> None:
        """The lane is done with ``writes`` (committed, failed or dropped): their chargers
        may go to another lane once none of theirs is left in this one."""
        for write in writes:
            held = self._holders.get(write.charge_point_id)
            if held is None:
                continue
            lane, count = held
            if count <= 1:
                del self._holders[write.charge_point_id]
            else:
                self._holders[write.charge_point_id] = (lane, count - 1)

    async def drain(self) -> None:
        """Wait until every write submitted so far is committed (or failed): at shutdown."""
        while tasks := [lane.task for lane in self._lanes if lane.task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, lane: _Lane) -> None:
        """Write the lane's queue batch by batch until it is empty, then end."""
        batch: list[Write[Any]] = []
        try:
            if len(lane.queue) < self.max_batch:
                if not self.adaptive or lane.gap <= self.window:
                    await asyncio.sleep(self.window)  # an idle lane: let others join
                else:
                    # Writes come slower than one per window: none would join. Take
                    # what this turn of the loop submits (frames read together), no more.
                    self.unwaited += 1
                    await asyncio.sleep(0)
            lane.collecting = False
            while lane.queue:
                dropped: list[Write[Any]] = []  # their callers went away
                batch = take_batch(lane.queue, self.max_batch, dropped)
                self._written(dropped)
                if batch:
                    await self._commit(batch)
                self._written(batch)
                batch = []
        except BaseException as error:  # cancelled at shutdown: nobody is left waiting
            for write in lane.queue:
                _fail(write, error)
            self._written([*batch, *lane.queue])
            lane.queue.clear()
            raise
        finally:
            lane.collecting = False
            lane.task = None

    async def _commit(self, batch: list[Write[Any]]) -> None:
        try:
            results = await self._transaction(segments(batch))
        except asyncio.CancelledError as error:
            for write in batch:
                _fail(write, error)
            raise
        except Exception as error:
            if len(batch) == 1 or metrics.db_unreachable(error):
                for write in batch:  # alone, or no database: one message would fail the same
                    _fail(write, error)
                return
            self.fallbacks += 1
            metrics.GROUP_COMMIT_FALLBACKS.inc()
            log.warning(
                "group_commit.batch_failed", writes=len(batch), error=repr(error)[:200],
                detail="writing each message in a transaction of its own",
            )  # fmt: skip
            await self._one_by_one(batch)
            return
        self.batches += 1
        metrics.DB_BATCH_SIZE.labels("group_commit").observe(len(batch))
        for write, result in zip(batch, results, strict=True):
            if write.future is not None and not write.future.done():
                write.future.set_result(result)

    async def _transaction(self, runs: list[list[Write[Any]]]) -> list[Any]:
        results: list[Any] = []
        async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
            if one_statement(runs):
                # Atomic on its own, and it returns only after its commit: BEGIN and
                # COMMIT would be two round trips more (most batches at low rates).
                self.single_statements += 1
                return await apply_segment(conn, runs[0])
            async with conn.transaction():
                for run in runs:
                    results.extend(await apply_segment(conn, run))
        return results  # only now, after COMMIT returned, may anyone be answered

    async def _one_by_one(self, batch: list[Write[Any]]) -> None:
        for write in batch:
            if write.future is None or write.future.done():
                continue
            try:
                async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
                    async with conn.transaction():
                        result = await write.apply(conn)
            except asyncio.CancelledError as error:
                for rest in batch:
                    _fail(rest, error)
                raise
            except Exception as error:
                _fail(write, error)
            else:
                if not write.future.done():
                    write.future.set_result(result)


def _fail(write: Write[Any], error: BaseException) -> None:
    future = write.future
    if future is None or future.done():
        return
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        future.exception()  # a caller that went away never retrieves it: no warning
