"""The password states of a rotation: which hashes a charger may connect with, and when."""

from __future__ import annotations

from csms.security.passwords import hash_password
from csms.storage import chargers, password_rotation
from tests.conftest import RunningCsms


async def hashes(csms: RunningCsms) -> tuple[str | None, tuple[str, ...]]:
    stored = await chargers.credentials_of(csms.pool, "CP")
    assert stored is not None
    return stored.password_hash, stored.alternate_password_hashes


async def test_accepted_then_reconnected(csms: RunningCsms) -> None:
    await chargers.set_credentials(csms.pool, "CP", password="a" * 20, security_profile=1)
    old, _ = await hashes(csms)
    assert old is not None
    new = hash_password("b" * 20)
    assert await password_rotation.set_pending(csms.pool, "CP", new)
    assert await hashes(csms) == (old, (new,))  # both work while the charger is asked
    await password_rotation.accepted(csms.pool, "CP", new)
    assert await hashes(csms) == (new, (old,))  # the old one until the charger reconnects
    await password_rotation.settle(csms.pool, "CP", new)
    assert await hashes(csms) == (new, ())


async def test_lost_answer_then_reconnect_with_the_new_password(csms: RunningCsms) -> None:
    await chargers.set_credentials(csms.pool, "CP", password="a" * 20, security_profile=1)
    old, _ = await hashes(csms)
    new = hash_password("b" * 20)
    await password_rotation.set_pending(csms.pool, "CP", new)
    await password_rotation.settle(csms.pool, "CP", old)  # still the old one: nothing changes
    assert await hashes(csms) == (old, (new,))
    await password_rotation.settle(csms.pool, "CP", new)
    assert await hashes(csms) == (new, ())


async def test_refused_rotation_and_no_password(csms: RunningCsms) -> None:
    assert not await password_rotation.set_pending(csms.pool, "NONE", "x")
    await chargers.set_credentials(csms.pool, "CP", password="a" * 20, security_profile=1)
    old, _ = await hashes(csms)
    new = hash_password("b" * 20)
    await password_rotation.set_pending(csms.pool, "CP", new)
    await password_rotation.abandoned(csms.pool, "CP", new)
    assert await hashes(csms) == (old, ())
