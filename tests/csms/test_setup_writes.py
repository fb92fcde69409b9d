"""Set-up writes (csms.storage.setup_writes, csms.presence): connect, boot and
disconnect of many chargers group-committed on the set-up lanes.

Real Postgres throughout: each charger answered only after its own write
committed, the fencing generation taken and checked by the same statement, a
stale socket never marking a moved charger offline, a resent boot stored once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from csms.central import CentralSystem, ConnectionSuperseded
from csms.config import Settings, UnknownChargerPolicy
from csms.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    Protocol,
    RegistrationStatus,
)
from tests.csms.test_group_commit import commit_waiting, commits_held
from tests.waiting import eventually


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=6)
    assert pool is not None
    yield pool
    await pool.close()


def central_of(pool: asyncpg.Pool, **overrides: Any) -> CentralSystem:
    """A central system whose set-up lane waits 200 ms for others (one batch per test)."""
    overrides.setdefault("setup_db_connections", 1)  # one lane: the test's writes meet
    settings = dataclasses.replace(
        Settings(), node_id="node-a", group_commit_window_ms=200.0, **overrides
    )
    return CentralSystem(pool, settings)


async def register(pool: asyncpg.Pool, *ids: str) -> None:
    await pool.executemany(
        "INSERT INTO chargers (charge_point_id, registration) VALUES ($1, 'Accepted')",
        [(cp,) for cp in ids],
    )


def connected(cp: str) -> ChargerConnected:
    return ChargerConnected(
        charge_point_id=cp, occurred_at=datetime.now(UTC), protocol=Protocol.V16
    )


def booted(cp: str) -> ChargerBooted:
    return ChargerBooted(
        charge_point_id=cp,
        occurred_at=datetime.now(UTC),
        protocol=Protocol.V201,
        vendor="Vendor",
        model="Model",
        firmware_version="1.2.3",
        reason="PowerUp",
    )


def disconnected(cp: str) -> ChargerDisconnected:
    return ChargerDisconnected(charge_point_id=cp, occurred_at=datetime.now(UTC))


async def events(pool: asyncpg.Pool, cp: str) -> list[str]:
    rows = await pool.fetch("SELECT type FROM events WHERE charge_point_id = $1 ORDER BY id", cp)
    return [r["type"] for r in rows]


async def presence(pool: asyncpg.Pool, cp: str) -> tuple[bool, str | None, int | None]:
    row = await pool.fetchrow(
        "SELECT connected, node_id, connection_generation FROM chargers WHERE charge_point_id = $1",
        cp,
    )
    assert row is not None
    return row["connected"], row["node_id"], row["connection_generation"]


async def test_many_connects_share_one_commit_each_with_its_own_generation(
    pool: asyncpg.Pool,
) -> None:
    ids = [f"CP-{n}" for n in range(5)]
    await register(pool, *ids)
    central = central_of(pool)
    results = await asyncio.gather(*(central.connect(connected(cp)) for cp in ids))
    assert central.setup_commit is not None and central.setup_commit.batches == 1
    generations = [generation for generation, _ in results]
    assert len(set(generations)) == 5
    assert all(registration is RegistrationStatus.ACCEPTED for _, registration in results)
    for cp, generation in zip(ids, generations, strict=True):
        assert await presence(pool, cp) == (True, "node-a", generation)
        assert await events(pool, cp) == ["charger_connected"]


async def test_a_connect_is_answered_only_after_its_commit(
    pool: asyncpg.Pool, database_dsn: str
) -> None:
    await register(pool, "HELD")
    central = central_of(pool)
    async with commits_held(database_dsn) as holder:
        answer = asyncio.create_task(central.connect(connected("HELD")))
        await eventually(lambda: commit_waiting(holder))
        await asyncio.sleep(0.1)  # it would have been answered by now if it did not wait
        assert not answer.done()
    generation, _ = await answer
    assert await presence(pool, "HELD") == (True, "node-a", generation)


async def test_the_later_of_two_connects_in_one_batch_holds_the_charger(
    pool: asyncpg.Pool,
) -> None:
    await register(pool, "TWICE")
    central = central_of(pool)
    first, second = await asyncio.gather(
        central.connect(connected("TWICE")), central.connect(connected("TWICE"))
    )
    assert first[0] < second[0]
    assert await presence(pool, "TWICE") == (True, "node-a", second[0])
    # The first socket, closing later, leaves the charger with the second.
    await central.disconnected(disconnected("TWICE"), first[0])
    assert await presence(pool, "TWICE") == (True, "node-a", second[0])


async def test_a_connect_older_than_the_holder_is_superseded(pool: asyncpg.Pool) -> None:
    await register(pool, "RACE")
    central = central_of(pool)
    older = await central.next_generation()  # accepted first, recorded late
    newer, _ = await central.connect(connected("RACE"))
    with pytest.raises(ConnectionSuperseded) as raised:
        await central.connected(connected("RACE"), older)
    assert raised.value.generation == older
    assert await presence(pool, "RACE") == (True, "node-a", newer)
    # And the statement of connect() fences the same way: a newer holder stays.
    await pool.execute(
        "UPDATE chargers SET connection_generation = connection_generation + 1000"
        " WHERE charge_point_id = 'RACE'"
    )
    with pytest.raises(ConnectionSuperseded):
        await central.connect(connected("RACE"))
    assert await events(pool, "RACE") == ["charger_connected"]


async def test_a_stale_socket_in_a_disconnect_batch_never_marks_a_moved_charger_offline(
    pool: asyncpg.Pool,
) -> None:
    await register(pool, "MOVED", "LEAVING")
    central = central_of(pool)
    stale, _ = await central.connect(connected("MOVED"))
    leaving, _ = await central.connect(connected("LEAVING"))
    await pool.execute(  # MOVED connected again through node B meanwhile
        "UPDATE chargers SET node_id = 'node-b', connection_generation = $1"
        " WHERE charge_point_id = 'MOVED'",
        leaving + 1,
    )
    batches = central.setup_commit.batches if central.setup_commit else 0
    await asyncio.gather(
        central.disconnected(disconnected("MOVED"), stale),
        central.disconnected(disconnected("LEAVING"), leaving),
    )
    assert central.setup_commit is not None and central.setup_commit.batches == batches + 1
    assert await presence(pool, "MOVED") == (True, "node-b", leaving + 1)
    assert await events(pool, "MOVED") == ["charger_connected"]
    assert (await presence(pool, "LEAVING"))[0] is False
    assert await events(pool, "LEAVING") == ["charger_connected", "charger_disconnected"]


async def test_boots_in_one_batch_and_a_resent_boot_stored_once(pool: asyncpg.Pool) -> None:
    await register(pool, "B-1", "B-2")
    await pool.execute("UPDATE chargers SET registration = 'Pending' WHERE charge_point_id = 'B-2'")
    central = central_of(pool)
    boot = booted("B-1")
    answers = await asyncio.gather(central.boot(boot), central.boot(booted("B-2")))
    assert list(answers) == [RegistrationStatus.ACCEPTED, RegistrationStatus.PENDING]
    assert central.setup_commit is not None and central.setup_commit.batches == 1
    assert await central.boot(boot) is RegistrationStatus.ACCEPTED  # the same message again
    assert await events(pool, "B-1") == ["charger_booted"]
    row = await pool.fetchrow(
        "SELECT protocol, vendor, model, firmware_version, last_boot_reason, last_boot_status"
        " FROM chargers WHERE charge_point_id = 'B-2'"
    )
    assert row is not None
    assert dict(row) == {
        "protocol": "ocpp2.0.1",
        "vendor": "Vendor",
        "model": "Model",
        "firmware_version": "1.2.3",
        "last_boot_reason": "PowerUp",
        "last_boot_status": "Pending",
    }


async def test_unknown_chargers_are_registered_by_policy(pool: asyncpg.Pool) -> None:
    accepting = central_of(pool)
    generation, registration = await accepting.connect(connected("NEW-A"))
    assert registration is RegistrationStatus.ACCEPTED
    assert await presence(pool, "NEW-A") == (True, "node-a", generation)
    pending = central_of(pool, unknown_charger_policy=UnknownChargerPolicy.PENDING)
    generation, registration = await pending.connect(connected("NEW-P"))
    assert registration is None  # nothing recorded: its boot registers it
    assert await pool.fetchval("SELECT count(*) FROM chargers WHERE charge_point_id = 'NEW-P'") == 0
    assert await pending.boot(booted("NEW-P"), generation) is RegistrationStatus.PENDING
    assert await presence(pool, "NEW-P") == (True, "node-a", generation)
    assert await events(pool, "NEW-P") == ["charger_booted"]


async def test_a_batch_of_several_kinds_is_one_transaction(pool: asyncpg.Pool) -> None:
    await register(pool, "MIX-1", "MIX-2", "MIX-3")
    central = central_of(pool)
    (generation, _), registration, credentials = await asyncio.gather(
        central.connect(connected("MIX-1")),
        central.boot(booted("MIX-2")),
        central.credentials_of("MIX-3"),
    )
    assert central.setup_commit is not None and central.setup_commit.batches == 1
    assert await presence(pool, "MIX-1") == (True, "node-a", generation)
    assert registration is RegistrationStatus.ACCEPTED
    assert await events(pool, "MIX-2") == ["charger_booted"]
    assert credentials is not None and credentials.security_profile == 0
    assert await central.credentials_of("NOBODY") is None
