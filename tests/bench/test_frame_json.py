"""bench.frame_json times old against new only after checking that both give the same."""

from __future__ import annotations

from bench import frame_json


def test_every_piece_is_measured_old_and_new() -> None:
    results = frame_json.measure(repeat=5)
    assert set(results) == {
        "read MeterValues",
        "read TransactionEvent",
        "digest bytes MeterValues",
        "digest bytes TransactionEvent",
        "one meter sample",
        "metrics of one message",
    }
    assert all(old > 0 and new > 0 for old, new in results.values())
