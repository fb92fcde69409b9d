"""The per-message metrics summed over a loop turn are what message-by-message writes give."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Histogram

from csms.message_tally import MessageTally
from csms.monitoring import metrics


def _buckets(child: object) -> list[float]:
    return [value.get() for value in child._buckets]  # type: ignore[attr-defined]


def _messages(action: str, outcome: str) -> float:
    value: float = metrics.bound(metrics.MESSAGES, "in", action, outcome)._value.get()
    return value


async def test_a_turns_sums_are_written_at_the_next_turn_as_observe_would() -> None:
    action = "TallyTestAction"
    durations = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.02, 0.4, 7.0, 0.0]
    reference = Histogram(
        "tally_reference", "", buckets=metrics.HANDLER_SECONDS._upper_bounds[:-1],
        registry=CollectorRegistry(),
    )  # fmt: skip
    for seconds in durations:
        reference.observe(seconds)
    child = metrics.bound(metrics.HANDLER_SECONDS, action)
    buckets_before, sum_before = _buckets(child), child._sum.get()
    ok_before, errors_before = _messages(action, "ok"), _messages(action, "call_error")
    tally = MessageTally()
    for seconds in durations:
        tally.add(action, "ok", seconds)
    tally.add(action, "call_error", 0.001)
    assert _messages(action, "ok") == ok_before  # not yet: at the next turn
    await asyncio.sleep(0)
    assert _messages(action, "ok") == ok_before + len(durations)
    assert _messages(action, "call_error") == errors_before + 1
    added = [after - before for after, before in zip(_buckets(child), buckets_before, strict=True)]
    expected = _buckets(reference)
    expected[metrics.HANDLER_SECONDS._upper_bounds.index(0.001)] += 1  # the call_error's
    assert added == expected
    assert abs(child._sum.get() - sum_before - sum(durations) - 0.001) < 1e-9


def test_sums_left_by_a_closed_loop_are_written_by_the_next() -> None:
    action = "TallyTestClosedLoop"
    before = _messages(action, "ok")
    tally = MessageTally()

    async def one() -> None:
        tally.add(action, "ok", 0.001)

    first = asyncio.new_event_loop()
    task = first.create_task(one())
    first.call_soon(first.stop)  # stops after this turn: the write queued in it never runs
    first.run_forever()
    first.close()
    assert task.done()
    assert _messages(action, "ok") == before

    async def another() -> None:
        tally.add(action, "ok", 0.002)
        await asyncio.sleep(0)

    asyncio.run(another())
    assert _messages(action, "ok") == before + 2
