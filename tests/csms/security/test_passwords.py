"""Password hashing, policy and the verification cache."""

from __future__ import annotations

import pytest

from csms.security.passwords import (
    PasswordVerifier,
    check_password_policy,
    generate_password,
    hash_password,
    verify_password,
)

PASSWORD = "0123456789abcdef"


def test_hash_is_argon2id_salted_and_verifies() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, PASSWORD.encode())
    assert not verify_password(first, b"0123456789abcdeX")
    assert not verify_password("not a hash", PASSWORD.encode())


@pytest.mark.parametrize("bad", ["short", "x" * 41, "sixteen chars\n!!"])
def test_password_policy(bad: str) -> None:
    with pytest.raises(ValueError):
        check_password_policy(bad)
    check_password_policy(generate_password())


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_success_is_cached_per_charger_password_and_hash() -> None:
    clock = Clock()
    verifier = PasswordVerifier(ttl=60, clock=clock)
    stored = hash_password(PASSWORD)
    assert await verifier.verify("CP", stored, PASSWORD.encode())
    assert await verifier.verify("CP", stored, PASSWORD.encode())
    assert verifier.hashes_computed == 1
    # a wrong password is never answered from the cache, nor is a failure cached
    assert not await verifier.verify("CP", stored, b"wrong-wrong-wrong")
    assert not await verifier.verify("CP", stored, b"wrong-wrong-wrong")
    assert verifier.hashes_computed == 3
    # another charger, or a new hash (password changed), is checked again
    assert await verifier.verify("CP2", stored, PASSWORD.encode())
    assert not await verifier.verify("CP", hash_password("another-password!"), PASSWORD.encode())
    assert verifier.hashes_computed == 5
    clock.now += 61  # expired
    assert await verifier.verify("CP", stored, PASSWORD.encode())
    assert verifier.hashes_computed == 6


async def test_cache_is_bounded() -> None:
    verifier = PasswordVerifier(max_entries=2)
    stored = hash_password(PASSWORD)
    for charger in ("A", "B", "C"):
        assert await verifier.verify(charger, stored, PASSWORD.encode())
    assert await verifier.verify("A", stored, PASSWORD.encode())  # evicted: hashed again
    assert verifier.hashes_computed == 4
