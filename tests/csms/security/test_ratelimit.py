"""The failed-upgrade limiter, driven by a fake clock."""

from __future__ import annotations

from csms.security.ratelimit import FailureLimiter, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_within_the_window_and_then_lets_go() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block_for=30, clock=clock)
    assert limiter.record_failure("a") is None
    assert limiter.record_failure("a") is None
    assert limiter.retry_after("a") is None
    assert limiter.record_failure("a") == 30
    assert limiter.retry_after("a") == 30
    assert limiter.retry_after("b") is None  # per address
    clock.now += 29
    assert limiter.retry_after("a") == 1
    clock.now += 1
    assert limiter.retry_after("a") is None


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block_for=30, clock=clock)
    limiter.record_failure("a")
    limiter.record_failure("a")
    clock.now += 61
    assert limiter.record_failure("a") is None
    assert limiter.record_failure("a") is None
    assert limiter.record_failure("a") == 30


def test_blocks_in_a_row_double_up_to_the_cap_and_are_forgiven_after_a_quiet_spell() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=1, window=60, block_for=30, max_block=100, clock=clock)
    blocks = []
    for gap in (31, 61, 100, 500, 0):  # each failure comes once the block before it ended
        blocks.append(limiter.record_failure("a"))
        clock.now += gap
    assert blocks == [30, 60, 100, 100, 30]  # 500 s quiet > max_block: strikes forgiven


def test_limit_zero_disables() -> None:
    limiter = FailureLimiter(limit=0, clock=Clock())
    assert all(limiter.record_failure("a") is None for _ in range(100))
    assert limiter.retry_after("a") is None


def test_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=5, max_addresses=100, clock=clock)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}")
        clock.now += 1
    assert len(limiter) <= 100


def test_address_key_groups_ipv6_by_64() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("not-an-ip") == "not-an-ip"
