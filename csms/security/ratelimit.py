"""Slow down addresses that keep failing the WebSocket upgrade.

Pure bookkeeping with the clock injected, so it is tested without sleeping.
After ``limit`` failures from one address within ``window`` seconds, that
address is refused (HTTP 429, no password checked) for ``block_for`` seconds;
each further block in a row doubles, up to ``max_block``, so a guesser gets a
handful of tries per hour while a charger with a wrong password left in its
configuration is back within a minute once it is fixed. Attempts refused while
blocked do not count (they cost nothing to refuse), so a neighbour behind the
same NAT is locked out no longer than the blocks the failures earned.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


def address_key(host: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64.

    An IPv6 host usually owns a whole /64 and could try from a fresh address
    every time; counting per /64 keeps the limit meaningful.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Address:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    strikes: int = 0  # blocks in a row; reset after a quiet spell
    last_failure: float = 0.0


class FailureLimiter:
    """Failed-upgrade counter per remote address. ``limit=0`` turns it off."""

    def __init__(
        self,
        *,
        limit: int = 10,
        window: float = 60.0,
        block_for: float = 60.0,
        max_block: float = 3600.0,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.block_for = block_for
        self.max_block = max_block
        self.max_addresses = max_addresses
        self._clock = clock
        self._addresses: dict[str, _Address] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds the address must still wait, or None if it may try now."""
        state = self._addresses.get(address)
        if state is None:
            return None
        remaining = state.blocked_until - self._clock()
        return remaining if remaining > 0 else None

    def record_failure(self, address: str) -> float | None:
        """Count one failed upgrade; return the block length if this one starts a block."""
        if self.limit <= 0:
            return None
        now = self._clock()
        state = self._addresses.get(address)
        if state is None:
            self._prune(now)
            state = self._addresses[address] = _Address()
        if state.strikes and now - state.last_failure > self.max_block:
            state.strikes = 0  # quiet for long enough: forgive earlier blocks
        state.last_failure = now
        failures = state.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        failures.clear()
        block = min(self.block_for * 2.0 ** min(state.strikes, 30), self.max_block)
        state.strikes += 1
        state.blocked_until = now + block
        return block

    def _prune(self, now: float) -> None:
        """Forget quiet addresses once too many are tracked, so memory stays bounded."""
        if len(self._addresses) < self.max_addresses:
            return
        horizon = max(self.window, self.max_block)
        for address, state in list(self._addresses.items()):
            if state.blocked_until <= now and now - state.last_failure > horizon:
                del self._addresses[address]
        # Still crowded: drop the oldest, leaving room so the scan above stays rare.
        while self._addresses and len(self._addresses) > self.max_addresses * 9 // 10:
            del self._addresses[next(iter(self._addresses))]

    def __len__(self) -> int:
        return len(self._addresses)
