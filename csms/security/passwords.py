"""Charger passwords (OCPP Basic Auth), stored as argon2id hashes.

Charger passwords are machine-to-machine secrets of 16-40 characters (OCPP
2.0.1 ``BasicAuthPassword``), so the hash only needs to make a leaked
database expensive to reverse, not to stretch a weak human password. We use
OWASP's first recommended argon2id setting (19 MiB, 2 passes, 1 lane): about
20 ms per verification, where the library default (64 MiB, 3 passes) costs
~8x as much memory and time and would let a reconnect storm of thousands of
chargers tie up every core. Verification runs in a worker thread, a bounded
number at a time, and a success is remembered for a few minutes so that a
charger that reconnects does not pay for it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 16  # OCPP 2.0.1 BasicAuthPassword is passwordString[16..40]
MAX_PASSWORD_LENGTH = 40

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def check_password_policy(password: str) -> None:
    """Raise ValueError for a password a charger could not be configured with."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"a charger password has {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters "
            f"(OCPP BasicAuthPassword), got {len(password)}"
        )
    if not password.isprintable():
        raise ValueError("a charger password has printable characters only")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) to store for a charger password."""
    check_password_policy(password)
    return _HASHER.hash(password)


def generate_password() -> str:
    """A random 32-character password for an operator who does not want to pick one."""
    return secrets.token_urlsafe(24)  # 24 bytes -> 32 URL-safe characters


def verify_password(password_hash: str, password: bytes) -> bool:
    """True if ``password`` (the bytes the charger sent) matches the stored hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordVerifier:
    """Verifies passwords off the event loop, with a short-lived cache of successes.

    The cache key is (charger, stored hash, keyed digest of the password): a
    password change makes the stored hash differ, so an old password stops
    working at once; the password itself is never kept, only an HMAC under a
    key that exists in this process only. Failures are never cached, so a
    right password is always accepted after a wrong one.
    """

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        max_entries: int = 100_000,
        concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, str, bytes], float] = {}
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)
        self.hashes_computed = 0  # how many argon2 verifications ran (for tests and metrics)

    async def verify(self, charge_point_id: str, password_hash: str, password: bytes) -> bool:
        key = (
            charge_point_id,
            password_hash,
            hmac.new(self._key, password, hashlib.sha256).digest(),
        )
        now = self._clock()
        expires = self._verified.get(key)
        if expires is not None and expires > now:
            return True
        async with self._slots:
            self.hashes_computed += 1
            ok = await asyncio.to_thread(verify_password, password_hash, password)
        if ok:
            self._remember(key, self._clock() + self._ttl)
        return ok

    def _remember(self, key: tuple[str, str, bytes], expires: float) -> None:
        self._verified.pop(key, None)
        self._verified[key] = expires
        while len(self._verified) > self._max_entries:  # drop the oldest insertions
            del self._verified[next(iter(self._verified))]
