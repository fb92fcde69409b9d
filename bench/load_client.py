"""A strict OCPP charger for open-loop load: one outstanding call, every answer checked.

A call is counted as answered only when a CALLRESULT with its message id comes
back; a CALLERROR, a frame of the wrong kind, or an answer to another id is an
error, and no answer within the timeout is a timeout (an answer arriving after
that is counted as late, never as a result). The CSMS's own calls are answered
(bench.ocpp_load.answer_server_call), so its post-boot probe does not wait.

:class:`Fleet` is a generator's share of the chargers in one event loop;
:class:`PhaseResult` what it measured in one phase (picklable: generator
processes send it to the parent, which merges them).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from bench.ocpp_load import Call, ChargerScript, answer_server_call, boot
from bench.open_loop import Arrivals, arrival_times, call_latency, send_time

MAX_ERROR_EXAMPLES = 5
SYNC_TIMEOUT = 60.0  # s: how long a server may take to work through a phase's backlog


@dataclass
class PhaseResult:
    """What one generator measured in one phase."""

    latencies: dict[str, list[float]] = field(default_factory=dict)  # by call kind, seconds
    service_times: list[float] = field(default_factory=list)  # send to answer, in the window, s
    scheduled: int = 0  # calls due in the measured window
    completed: int = 0  # answers (any) received in the measured window: the achieved rate
    answers: int = 0  # every answer of the phase (warm-up and sync too): CPU per call
    errors: int = 0  # CALLERROR, wrong frame or id, socket closed by the server
    disconnects: int = 0  # of those: the socket closed with the call unanswered
    reconnects: int = 0
    timeouts: int = 0
    late_answers: int = 0  # answers after their call timed out
    backlog: int = 0  # calls due in the window but never sent (the charger was still waiting)
    rejected_starts: int = 0  # a start answered with another status than Accepted
    samples_answered: int = 0  # meter samples in calls answered with a CALLRESULT
    samples_unsure: int = 0  # in calls that timed out (stored or not)
    server_calls: int = 0  # calls of the CSMS answered
    error_examples: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this generator process's CPU during the phase
    wall_seconds: float = 0.0  # the phase's length in this process (warm-up and drain too)
    loop_lag_max: float = 0.0  # the generator's own event-loop lag (late timers)
    settle_seconds: float = 0.0  # after the window, until every charger's sync call was answered

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_examples) < MAX_ERROR_EXAMPLES:
            self.error_examples.append(text[:300])

    def merge(self, other: PhaseResult) -> None:
        for kind, values in other.latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        self.service_times.extend(other.service_times)
        for name in (
            "scheduled completed answers errors disconnects reconnects timeouts late_answers "
            "backlog rejected_starts samples_answered samples_unsure server_calls cpu_seconds"
        ).split():
            setattr(self, name, getattr(self, name) + getattr(other, name))
        room = MAX_ERROR_EXAMPLES - len(self.error_examples)
        self.error_examples.extend(other.error_examples[: max(room, 0)])
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)
        self.settle_seconds = max(self.settle_seconds, other.settle_seconds)
        self.loop_lag_max = max(self.loop_lag_max, other.loop_lag_max)


@dataclass(frozen=True)
class Window:
    """One phase: calls due in [start, end) are sent; from ``measured_from`` on they count."""

    start: float  # time.monotonic(), the same clock in every process of the machine
    measured_from: float
    end: float


class StrictCharger:
    def __init__(self, url: str, charger_id: str, v201: bool, timeout: float) -> None:
        self.url, self.id, self.v201, self.timeout = url, charger_id, v201, timeout
        self.script = ChargerScript(charger_id, v201)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._expired: set[str] = set()
        self._ids = itertools.count(1)
        self.result = PhaseResult()  # where the reader counts; swapped per phase
        self.answered_at = 0.0  # when the last call's answer came (or it timed out)
        self.compression: str | None = None

    async def _connect(self) -> None:
        self._ws = await connect(
            f"{self.url}/{self.id}",
            subprotocols=[Subprotocol("ocpp2.0.1" if self.v201 else "ocpp1.6")],
            ping_interval=None,  # the CSMS pings; the library answers
            compression=self.compression,
            open_timeout=60,
        )
        self._reader = asyncio.create_task(self._read())

    async def _reconnect(self, until: float) -> bool:
        """After the server closed the socket: connect again, as a charger does (no boot)."""
        await self.close()
        while time.monotonic() < until:
            await asyncio.sleep(random.uniform(0.1, 1.0))
            try:
                await self._connect()
            except (OSError, InvalidHandshake, TimeoutError):
                continue
            self.result.reconnects += 1
            return True
        return False

    async def open(self, compression: str | None, rng: random.Random) -> None:
        """Connect, boot, start a transaction, continue at a random meter value."""
        self.compression = compression
        await self._connect()
        for call in (boot(self.v201), self.script.next_call(), self.script.next_call()):
            answer = await self._call(call)
            if answer is None:
                raise RuntimeError(f"{self.id}: {call.action} failed during setup")
            self.script.on_answer(call, answer)
        self.script.skip_to_random_meter_value(rng)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()

    async def run(self, schedule: list[float], window: Window) -> None:
        """Send one call per due time (not before the previous answer), until ``window.end``."""
        result = self.result
        result.scheduled += sum(1 for s in schedule if s >= window.measured_from)
        for index, scheduled in enumerate(schedule):
            at = send_time(scheduled, self.answered_at)
            if at >= window.end:  # still waiting at the end: the rest was never sent
                result.backlog += sum(1 for s in schedule[index:] if s >= window.measured_from)
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            call = self.script.next_call()
            sent = time.monotonic()
            try:
                answer = await self._call(call)
            except (ConnectionClosed, ConnectionError):  # counted; the call may be stored
                result.samples_unsure += call.samples
                if await self._reconnect(window.end):
                    continue
                return
            answered = self.answered_at
            in_window = window.measured_from <= answered < window.end
            result.completed += in_window
            if answer is None:
                continue
            self.script.on_answer(call, answer)
            if in_window:  # by answer time: defined even when nothing due in the window was sent
                result.service_times.append(answered - sent)
            if scheduled >= window.measured_from:
                latency = call_latency(scheduled, answered)
                result.latencies.setdefault(call.kind, []).append(latency)

    async def sync(self, wait: float) -> None:
        """A Heartbeat answered: the CSMS has worked through everything this charger sent.

        OCPP servers answer a charger's calls in order, so this answer comes after
        those of calls that timed out earlier: the next phase starts on a server
        that is not still digesting this one.
        """
        if self._ws is None or self._ws.close_code is not None:
            return
        if await self._call(Call("sync", "Heartbeat", {}), wait) is None:
            self.result.error(f"{self.id}: sync Heartbeat not answered within {wait:g} s")

    async def _call(self, call: Call, wait: float | None = None) -> dict[str, Any] | None:
        """The CALLRESULT payload, or None (counted as an error or a timeout)."""
        assert self._ws is not None
        message_id = str(next(self._ids))
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = answer
        result = self.result
        try:
            await self._ws.send(json.dumps([2, message_id, call.action, call.payload]))
            async with asyncio.timeout(wait or self.timeout):
                frame = await answer
        except TimeoutError:
            self._expired.add(message_id)
            result.timeouts += 1
            result.samples_unsure += call.samples
            return None
        except (ConnectionClosed, ConnectionError) as error:
            result.disconnects += 1
            result.error(f"{self.id} {call.action}: connection closed ({error})")
            raise
        finally:
            self._pending.pop(message_id, None)
            self.answered_at = time.monotonic()
        result.answers += 1
        if frame[0] != 3 or len(frame) != 3 or not isinstance(frame[2], dict):
            result.error(f"{self.id} {call.action}: {json.dumps(frame)}")
            return None
        payload: dict[str, Any] = frame[2]
        result.samples_answered += call.samples
        if call.kind == "start":
            info = payload.get("idTagInfo") or payload.get("idTokenInfo") or {}
            if info.get("status") != "Accepted":
                result.rejected_starts += 1
        return payload

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                    kind, message_id = frame[0], frame[1]
                except (ValueError, TypeError, IndexError, KeyError):
                    self.result.error(f"{self.id}: unreadable frame {str(raw)[:200]}")
                    continue
                if kind == 2:
                    if len(frame) != 4 or not isinstance(frame[3], dict):
                        self.result.error(f"{self.id}: malformed call {str(raw)[:200]}")
                        continue
                    answer = answer_server_call(frame[2], frame[3])
                    await self._ws.send(json.dumps([3, message_id, answer]))
                    self.result.server_calls += 1
                elif (future := self._pending.get(message_id)) is not None:
                    if not future.done():
                        future.set_result(frame)
                elif message_id in self._expired:
                    self._expired.discard(message_id)
                    self.result.late_answers += 1
                else:
                    self.result.error(f"{self.id}: answer to no call: {str(raw)[:200]}")
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))


class Fleet:
    """A generator's chargers: open them, run phases, close them."""

    def __init__(self, url: str, indices: list[int], timeout: float) -> None:
        self.chargers = [
            StrictCharger(url, f"BENCH-{i:05d}", v201=i % 2 == 1, timeout=timeout) for i in indices
        ]

    async def open(self, compression: str | None, seed: int, concurrency: int = 100) -> int:
        """Open every charger, ``concurrency`` at a time; the number that failed."""
        rng = random.Random(seed)
        gate = asyncio.Semaphore(concurrency)

        async def one(charger: StrictCharger) -> None:
            async with gate:
                await charger.open(compression, random.Random(rng.random()))

        outcomes = await asyncio.gather(*(one(c) for c in self.chargers), return_exceptions=True)
        failed = [c for c, o in zip(self.chargers, outcomes, strict=True) if o is not None]
        for charger in failed:
            await charger.close()
        self.chargers = [c for c in self.chargers if c not in failed]
        return len(failed)

    async def run_phase(
        self, fleet_rate: float, window: Window, arrivals: Arrivals, seed: int
    ) -> PhaseResult:
        """Each charger runs its share of ``fleet_rate`` (calls/s of this generator's chargers)."""
        rng = random.Random(seed)
        rate = fleet_rate / max(len(self.chargers), 1)
        for charger in self.chargers:
            charger.result = PhaseResult()
            charger.answered_at = 0.0
        lag = LoopLagWatch()
        lag.start()
        cpu_before, began = time.process_time(), time.monotonic()
        await asyncio.gather(
            *(
                c.run(list(arrival_times(rate, window.start, window.end, rng, arrivals)), window)
                for c in self.chargers
            ),
            return_exceptions=True,
        )
        ended = time.monotonic()
        await asyncio.gather(*(c.sync(SYNC_TIMEOUT) for c in self.chargers), return_exceptions=True)
        settled = time.monotonic() - ended
        merged = PhaseResult(cpu_seconds=time.process_time() - cpu_before)
        merged.settle_seconds = settled
        merged.loop_lag_max = lag.stop()
        for charger in self.chargers:
            merged.merge(charger.result)
            charger.result = PhaseResult()
        merged.wall_seconds = time.monotonic() - began
        return merged

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.chargers), return_exceptions=True)


class LoopLagWatch:
    """The largest lateness of a 10 ms timer: how far behind this generator's loop runs."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.max = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return self.max

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.max = max(self.max, time.monotonic() - before - self.interval)
