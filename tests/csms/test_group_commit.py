"""Group commit (csms.storage.group_commit): answers after commit, order, poison, window 0.

Real Postgres throughout. The answer-after-commit tests hold the batch's COMMIT
with a deferred trigger that waits for an advisory lock this test holds: while
the commit waits, nobody may have been answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from csms.central import CentralSystem
from csms.config import Settings
from csms.events import (
    ConnectorStatus,
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    Protocol,
    RegistrationStatus,
    SessionEnded,
    SessionStarted,
    SessionUpdated,
)
from csms.storage import batched_writes, chargers, event_log, session_events
from csms.storage.group_commit import GroupCommitter, Write, segments
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import RawCharger, raw_charger
from tests.waiting import eventually

HOLD_KEY = 424242
T0 = datetime(2026, 1, 1, tzinfo=UTC)

HOLD_COMMIT = f"""
CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({HOLD_KEY}); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER test_hold_commit AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit();
"""


@contextlib.asynccontextmanager
async def commits_held(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Every transaction that inserts an event waits at COMMIT until this block ends."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(HOLD_COMMIT)
        await conn.execute("SELECT pg_advisory_lock($1)", HOLD_KEY)
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", HOLD_KEY)
        await conn.close()


async def commit_waiting(conn: asyncpg.Connection) -> bool:
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1",
        HOLD_KEY,
    )
    return bool(waiting)


def status_event(charge_point_id: str, minute: int) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id=charge_point_id,
        occurred_at=T0 + timedelta(minutes=minute),
        evse_id=1,
        connector_id=1,
        status=ConnectorStatus.OCCUPIED,
    )


def meter_event(charge_point_id: str, wh: float) -> MeterSampled:
    sample = MeterSample(T0 + timedelta(seconds=wh), "Energy.Active.Import.Register", wh, "Wh")
    return MeterSampled(
        charge_point_id=charge_point_id,
        occurred_at=sample.sampled_at,
        evse_id=1,
        connector_id=1,
        transaction_id=None,
        samples=(sample,),
    )


async def append_status(conn: Any, event: ConnectorStatusChanged) -> str:
    await event_log.append(conn, event)
    return str(event.event_id)


# -- the committer on its own --------------------------------------------------------------


def test_segments_keep_each_chargers_writes_apart_and_in_order() -> None:
    async def nothing(conn: Any) -> None:
        return None

    writes = [Write(cp, nothing) for cp in ["a", "b", "a", "c", "a", "b"]]
    runs = segments(writes)
    assert [[w.charge_point_id for w in run] for run in runs] == [
        ["a", "b"],
        ["a", "c"],
        ["a", "b"],
    ]
    assert [w for run in runs for w in run] == writes


async def test_batch_keeps_each_chargers_order(database_dsn: str) -> None:
    """Many writes of three chargers, generic and bulk, in one batch: stored in submission order."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.2, max_batch=1000, lanes=1)
        writes: list[asyncio.Task[Any]] = []
        expected: dict[str, list[str]] = {}
        for n in range(6):
            for cp in ("CP-A", "CP-B", "CP-C"):
                if n % 2:
                    meter = meter_event(cp, float(n))
                    write: Write[Any] = Write(
                        cp,
                        functools.partial(event_log.record_meter_sampled, event=meter),
                        batched_writes.METER_SAMPLED,
                        meter,
                    )
                    event_id = str(meter.event_id)
                else:
                    status = status_event(cp, n)
                    write = Write(cp, functools.partial(append_status, event=status))
                    event_id = str(status.event_id)
                expected.setdefault(cp, []).append(event_id)
                writes.append(asyncio.create_task(committer.submit(write)))
        await asyncio.sleep(0)  # every task has submitted its write
        await committer.drain()  # what shutdown waits for: every write committed
        assert await pool.fetchval("SELECT count(*) FROM events") == len(writes)
        await asyncio.gather(*writes)
        assert committer.batches == 1 and committer.fallbacks == 0
        for cp, ids in expected.items():
            rows = await pool.fetch(
                "SELECT event_id::text FROM events WHERE charge_point_id = $1 ORDER BY xact_id, id",
                cp,
            )
            assert [r["event_id"] for r in rows] == ids  # the feed's order is the sent order
    finally:
        await pool.close()


async def test_caller_is_answered_only_after_commit(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.01, max_batch=100, lanes=1)
        async with commits_held(database_dsn) as holder:
            event = status_event("CP-HELD", 1)
            answered = asyncio.create_task(
                committer.submit(Write("CP-HELD", functools.partial(append_status, event=event)))
            )
            await eventually(lambda: commit_waiting(holder))
            await asyncio.sleep(0.05)  # a wrong committer resolved the future before COMMIT
            assert not answered.done(), "answered while the commit was still waiting"
            stored = await holder.fetchval(
                "SELECT count(*) FROM events WHERE event_id = $1", event.event_id
            )
            assert stored == 0
        assert await asyncio.wait_for(answered, 10) == str(event.event_id)
        assert await pool.fetchval(
            "SELECT count(*) FROM events WHERE event_id = $1", event.event_id
        )
    finally:
        await pool.close()


async def test_a_batch_of_one_statement_runs_alone_and_still_answers_after_commit(
    database_dsn: str,
) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.05, max_batch=100, lanes=1)

        def meter_write(cp: str) -> Write[Any]:
            meter = meter_event(cp, 1.0)
            return Write(
                cp,
                functools.partial(event_log.record_meter_sampled, event=meter),
                batched_writes.METER_SAMPLED,
                meter,
            )

        async with commits_held(database_dsn) as holder:
            meters = [
                asyncio.create_task(committer.submit(meter_write(cp)))
                for cp in ("CP-1", "CP-2", "CP-3")
            ]
            await eventually(lambda: commit_waiting(holder))
            await asyncio.sleep(0.05)  # a wrong committer answered before the commit
            assert not any(task.done() for task in meters)
        await asyncio.wait_for(asyncio.gather(*meters), 10)
        assert committer.batches == 1 and committer.single_statements == 1
        assert await pool.fetchval("SELECT count(*) FROM meter_samples") == 3

        # With a write of its own beside them: one transaction for both.
        status = status_event("CP-1", 5)
        mixed = [
            committer.submit(meter_write("CP-4")),
            committer.submit(Write("CP-1", functools.partial(append_status, event=status))),
        ]
        await asyncio.wait_for(asyncio.gather(*mixed), 10)
        assert committer.batches == 2 and committer.single_statements == 1
    finally:
        await pool.close()


async def test_poisoned_write_fails_alone(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=3)
    try:
        committer = GroupCommitter(pool, window=0.2, max_batch=100, lanes=1)

        async def poisoned(conn: Any) -> None:
            await conn.execute("SELECT 1 / 0")

        good = [status_event(f"CP-{n}", n) for n in range(4)]
        tasks = [
            asyncio.create_task(
                committer.submit(
                    Write(e.charge_point_id, functools.partial(append_status, event=e))
                )
            )
            for e in good[:2]
        ]
        bad = asyncio.create_task(committer.submit(Write("CP-BAD", poisoned)))
        tasks += [
            asyncio.create_task(
                committer.submit(
                    Write(e.charge_point_id, functools.partial(append_status, event=e))
                )
            )
            for e in good[2:]
        ]
        with pytest.raises(asyncpg.DivisionByZeroError):
            await bad
        assert await asyncio.gather(*tasks) == [str(e.event_id) for e in good]
        assert committer.fallbacks == 1
        assert await pool.fetchval("SELECT count(*) FROM events") == len(good)
    finally:
        await pool.close()


# -- through the CSMS: chargers' answers ---------------------------------------------------


def frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


BOOT_16 = frame("boot", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})


def status_16(message_id: str, connector_id: int) -> str:
    return frame(
        message_id,
        "StatusNotification",
        {
            "connectorId": connector_id,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": "2026-01-01T00:00:00Z",
        },
    )


def meter_16(message_id: str, wh: int) -> str:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}]
    return frame(
        message_id,
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [{"timestamp": f"2026-01-01T00:00:{wh:02d}Z", "sampledValue": sampled}],
        },
    )


async def answer_to(charger: RawCharger, message_id: str, within: float = 10.0) -> Any:
    """The CSMS's answer to our call ``message_id``, skipping calls the CSMS makes itself."""
    while True:
        message = json.loads(await asyncio.wait_for(charger.websocket.recv(), within))
        if message[0] != 2:
            assert message[1] == message_id
            return message


async def call(charger: RawCharger, message: str) -> Any:
    await charger.send(message)
    return await answer_to(charger, json.loads(message)[1])


async def booted(charger: RawCharger) -> RawCharger:
    answer = await call(charger, BOOT_16)
    assert answer[2]["status"] == "Accepted"
    return charger


async def test_charger_is_answered_only_after_its_data_committed(
    start_csms: StartCsms, database_dsn: str
) -> None:
    csms: RunningCsms = await start_csms(group_commit_window_ms=5)
    assert csms.app.central.group_commit is not None
    async with raw_charger(csms.ocpp_url, "GC-HELD") as charger:
        await booted(charger)
        async with commits_held(database_dsn) as holder:
            await charger.send(meter_16("mv", 7))
            await eventually(lambda: commit_waiting(holder))
            with pytest.raises(TimeoutError):  # a wrong CSMS answered before COMMIT returned
                await answer_to(charger, "mv", 0.3)
        answer = await answer_to(charger, "mv")
        assert answer[:2] == [3, "mv"]
        stored = await csms.pool.fetchval(
            "SELECT count(*) FROM meter_samples WHERE charge_point_id = 'GC-HELD'"
        )
        assert stored == 1  # committed by the time the charger had its answer


async def test_poisoned_message_in_a_batch_fails_alone(start_csms: StartCsms) -> None:
    """Five chargers' messages in one batch, one with a connectorId no column can hold."""
    csms = await start_csms(group_commit_window_ms=1000, db_pool_max=4)  # one lane
    committer = csms.app.central.group_commit
    assert committer is not None
    async with contextlib.AsyncExitStack() as stack:
        chargers = [
            await booted(await stack.enter_async_context(raw_charger(csms.ocpp_url, f"GC-{n}")))
            for n in range(5)
        ]
        fallbacks = committer.fallbacks
        answers = await asyncio.gather(
            *(call(c, status_16(f"s{n}", 2**40 if n == 2 else 1)) for n, c in enumerate(chargers))
        )
    assert committer.fallbacks == fallbacks + 1  # their batch failed and was retried one by one
    assert answers[2][0] == 4 and answers[2][2] == "PropertyConstraintViolation"
    assert [a[:2] for n, a in enumerate(answers) if n != 2] == [[3, f"s{n}"] for n in (0, 1, 3, 4)]
    stored = await csms.pool.fetch(
        "SELECT charge_point_id FROM connectors ORDER BY charge_point_id"
    )
    assert [r["charge_point_id"] for r in stored] == ["GC-0", "GC-1", "GC-3", "GC-4"]


async def test_window_zero_writes_each_message_in_its_own_transaction(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(group_commit_window_ms=0)
    assert csms.app.central.group_commit is None
    async with raw_charger(csms.ocpp_url, "GC-OFF") as charger:
        await booted(charger)
        assert (await call(charger, meter_16("m1", 1)))[:2] == [3, "m1"]
        assert (await call(charger, status_16("s1", 1)))[:2] == [3, "s1"]
        refused = await call(charger, status_16("s2", 2**40))
        assert refused[0] == 4 and refused[2] == "PropertyConstraintViolation"
    rows = await csms.pool.fetch(
        "SELECT type, xact_id FROM events WHERE charge_point_id = 'GC-OFF' "
        "AND type IN ('meter_sampled', 'connector_status_changed') ORDER BY xact_id, id"
    )
    assert [r["type"] for r in rows] == ["meter_sampled", "connector_status_changed"]
    assert rows[0]["xact_id"] != rows[1]["xact_id"]


# -- the bulk writers store what the one-message path stores ------------------------------


def transaction_events(charge_point_id: str) -> list[SessionStarted | SessionUpdated]:
    def samples(minute: int, wh: float) -> tuple[MeterSample, ...]:
        at = T0 + timedelta(minutes=minute)
        return (
            MeterSample(at, "Energy.Active.Import.Register", wh, "Wh"),
            MeterSample(
                at, "Power.Active.Import", 7000.0, "W", phase=None, context="Sample.Periodic"
            ),
            # every text column set, and each differently: a column read from the wrong
            # argument (the bulk writer passes the five as one two-dimensional array) shows
            MeterSample(
                at, "Current.Import", 16.0, "A", phase="L2", context="Sample.Clock", location="EV"
            ),
            MeterSample(at, "Voltage", 230.5, None, phase="L1-N", location="Inlet"),
        )

    common: dict[str, Any] = {"charge_point_id": charge_point_id, "transaction_id": "TX-1"}
    started = SessionStarted(
        **common,
        occurred_at=T0,
        evse_id=1,
        connector_id=1,
        id_token=None,
        seq_no=0,
        samples=samples(0, 100.0),
    )
    # One arrives late: readings and charging state follow the rules, not the arrival.
    updates = [
        SessionUpdated(
            **common,
            occurred_at=T0 + timedelta(minutes=n),
            seq_no=n,
            trigger_reason="MeterValuePeriodic",
            charging_state="Charging" if n < 3 else "SuspendedEV",
            samples=samples(n, 100.0 + n),
        )
        for n in (1, 3, 2)
    ]
    return [started, *updates, updates[0]]  # and a resend


def batched_and_alone(pool: asyncpg.Pool, database_dsn: str) -> tuple[CentralSystem, CentralSystem]:
    """Two centrals on one pool: one batching writes (50 ms window), one writing each alone."""
    settings = dataclasses.replace(Settings(), database_url=database_dsn)
    return (
        CentralSystem(pool, dataclasses.replace(settings, group_commit_window_ms=50)),
        CentralSystem(pool, dataclasses.replace(settings, group_commit_window_ms=0)),
    )


async def test_bulk_session_updates_store_what_one_by_one_stores(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, alone = batched_and_alone(pool, database_dsn)
        for cp in ("CP-BATCHED", "CP-ALONE"):
            await chargers.register(pool, cp, RegistrationStatus.ACCEPTED)
        for batched_event, alone_event in zip(
            transaction_events("CP-BATCHED"), transaction_events("CP-ALONE"), strict=True
        ):
            for central, event in ((batched, batched_event), (alone, alone_event)):
                if isinstance(event, SessionStarted):
                    await central.start_session(event, Protocol.V201)
                else:
                    await central.update_session(event, Protocol.V201)
        assert batched.group_commit is not None and batched.group_commit.batches > 0

        async def stored(cp: str) -> tuple[Any, ...]:
            session = await pool.fetchrow("SELECT * FROM sessions WHERE charge_point_id = $1", cp)
            events = await pool.fetch(
                "SELECT type, payload, context - 'id' - 'charge_point_id' AS context "
                "FROM events WHERE charge_point_id = $1 ORDER BY xact_id, id",
                cp,
            )
            samples = await pool.fetch(
                "SELECT sampled_at, measurand, phase, location, context, value, unit, evse_id, "
                "connector_id, session_id IS NOT NULL AS linked "
                "FROM meter_samples WHERE charge_point_id = $1 ORDER BY id",
                cp,
            )
            assert session is not None
            row = {
                k: v
                for k, v in session.items()
                if k not in {"id", "charge_point_id", "created_at", "updated_at"}
            }
            return row, [dict(e) for e in events], [dict(s) for s in samples]

        assert await stored("CP-BATCHED") == await stored("CP-ALONE")
    finally:
        await pool.close()


async def test_bulk_statuses_store_what_one_by_one_stores(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, alone = batched_and_alone(pool, database_dsn)

        def statuses(cp: str) -> list[ConnectorStatusChanged]:
            def status(minute: int, value: ConnectorStatus, **extra: Any) -> ConnectorStatusChanged:
                at = T0 + timedelta(minutes=minute)
                return ConnectorStatusChanged(
                    charge_point_id=cp, occurred_at=at, evse_id=1, connector_id=1, status=value,
                    **extra,
                )  # fmt: skip

            first = status(1, ConnectorStatus.AVAILABLE, detail="Available")
            faulted = status(3, ConnectorStatus.FAULTED, error_code="GroundFailure", info="x")
            late = status(2, ConnectorStatus.OCCUPIED, detail="Charging")  # older: not applied
            return [first, faulted, late, first]  # and a resend

        for cp in ("CP-BATCHED", "CP-ALONE"):
            await chargers.register(pool, cp, RegistrationStatus.ACCEPTED)
        for batched_event, alone_event in zip(
            statuses("CP-BATCHED"), statuses("CP-ALONE"), strict=True
        ):
            await batched.record(batched_event)
            await alone.record(alone_event)
        assert batched.group_commit is not None and batched.group_commit.batches > 0

        async def stored(cp: str) -> tuple[Any, ...]:
            connectors = await pool.fetch(
                "SELECT evse_id, connector_id, status, detail, error_code, info, status_at "
                "FROM connectors WHERE charge_point_id = $1",
                cp,
            )
            events = await pool.fetch(
                "SELECT type, evse_id, connector_id, occurred_at, payload FROM events "
                "WHERE charge_point_id = $1 ORDER BY xact_id, id",
                cp,
            )
            return [dict(c) for c in connectors], [dict(e) for e in events]

        batched_rows = await stored("CP-BATCHED")
        assert batched_rows == await stored("CP-ALONE")
        assert [c["status"] for c in batched_rows[0]] == ["Faulted"]
        assert len(batched_rows[1]) == 3
    finally:
        await pool.close()


async def test_bulk_meter_values_store_what_one_by_one_stores(database_dsn: str) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, alone = batched_and_alone(pool, database_dsn)
        sample_sets = [
            event.samples
            for event in transaction_events("any")
            if isinstance(event, SessionUpdated)
        ]

        def meter_values(cp: str) -> list[MeterSampled]:
            return [
                MeterSampled(
                    charge_point_id=cp,
                    occurred_at=T0 + timedelta(minutes=n),
                    evse_id=1,
                    connector_id=n,
                    transaction_id=None,
                    samples=samples,
                )
                for n, samples in enumerate([*sample_sets, ()])  # one without samples
            ]

        for cp in ("CP-BATCHED", "CP-ALONE"):
            await chargers.register(pool, cp, RegistrationStatus.ACCEPTED)
        for central, cp in ((batched, "CP-BATCHED"), (alone, "CP-ALONE")):
            # a charger's messages are written in order; two chargers share each batch
            events = meter_values(cp) + meter_values(cp + "-2")
            if cp.endswith("ALONE"):
                for event in events:
                    await central.record(event)
            else:
                await asyncio.gather(*(central.record(event) for event in events))
        assert batched.group_commit is not None and batched.group_commit.batches > 0

        async def stored(cp: str) -> list[dict[str, Any]]:
            rows = await pool.fetch(
                "SELECT sampled_at, measurand, phase, location, context, value, unit, evse_id, "
                "connector_id FROM meter_samples WHERE charge_point_id = $1 ORDER BY id",
                cp,
            )
            return [dict(r) for r in rows]

        assert len(await stored("CP-BATCHED")) == 4 * len(sample_sets) > 0
        assert await stored("CP-BATCHED") == await stored("CP-ALONE")
        assert await stored("CP-BATCHED-2") == await stored("CP-ALONE-2")
    finally:
        await pool.close()


def _update(charge_point_id: str, index: int) -> SessionUpdated:
    event = transaction_events(charge_point_id)[index]
    assert isinstance(event, SessionUpdated)
    return event


async def _started_fleet(central: CentralSystem, pool: asyncpg.Pool, cps: list[str]) -> None:
    for cp in cps:
        await chargers.register(pool, cp, RegistrationStatus.ACCEPTED)
        started = transaction_events(cp)[0]
        assert isinstance(started, SessionStarted)
        await central.start_session(started, Protocol.V201)


def _end(charge_point_id: str, minute: int, meter_stop_wh: float | None) -> SessionEnded:
    at = T0 + timedelta(minutes=minute)
    return SessionEnded(
        charge_point_id=charge_point_id,
        occurred_at=at,
        transaction_id="TX-1",
        evse_id=1,
        connector_id=1,
        meter_stop_wh=meter_stop_wh,
        stop_reason="EVDisconnected",
        trigger_reason="EVCommunicationLost",
        seq_no=minute,
        samples=(
            MeterSample(at, "Energy.Active.Import.Register", 150.0 + minute, "Wh"),
            MeterSample(at, "Power.Active.Import", 0.0, "W", context="Transaction.End"),
        ),
    )


async def test_bulk_session_ends_store_what_one_by_one_stores(database_dsn: str) -> None:
    """An end written by the session-events statement (with others' updates in one batch)
    stores what the one-message path stores: the session ended with its stop reading (the
    meterStop, else the end's latest reading), its samples, its event and snapshot; a
    resend of it writes nothing and has no session reference."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, alone = batched_and_alone(pool, database_dsn)
        assert batched.group_commit is not None
        batched.group_commit._lanes = batched.group_commit._lanes[:1]
        for meter_stop in (None, 4000.0):
            cps = {"B": f"CP-END-B-{meter_stop}", "A": f"CP-END-A-{meter_stop}",
                   "O": f"CP-END-O-{meter_stop}"}  # fmt: skip
            await _started_fleet(batched, pool, [cps["B"], cps["O"]])
            await _started_fleet(alone, pool, [cps["A"]])
            single = batched.group_commit.single_statements
            end_b = _end(cps["B"], 5, meter_stop)
            await asyncio.gather(
                batched.end_session(end_b, Protocol.V201),
                batched.update_session(_update(cps["O"], 1), Protocol.V201),
            )
            assert batched.group_commit.single_statements == single + 1  # both in one
            await alone.end_session(_end(cps["A"], 5, meter_stop), Protocol.V201)
            assert await batched._write_session_event(end_b, Protocol.V201) == (None, None)

            async def stored(cp: str) -> tuple[Any, ...]:
                session = await pool.fetchrow(
                    "SELECT * FROM sessions WHERE charge_point_id = $1", cp
                )
                assert session is not None
                events = await pool.fetch(
                    "SELECT type, payload - 'event_id' AS payload,"
                    " context - 'id' - 'charge_point_id' AS context"
                    " FROM events WHERE charge_point_id = $1 ORDER BY xact_id, id",
                    cp,
                )
                samples = await pool.fetch(
                    "SELECT sampled_at, measurand, context, value, unit, evse_id, connector_id,"
                    " session_id = $2 AS linked FROM meter_samples WHERE charge_point_id = $1"
                    " ORDER BY id",
                    cp,
                    session["id"],
                )
                row = {
                    k: v
                    for k, v in session.items()
                    if k not in {"id", "charge_point_id", "created_at", "updated_at"}
                }
                return row, [dict(e) for e in events], [dict(s) for s in samples]

            batched_row, batched_events, batched_samples = await stored(cps["B"])
            alone_row, alone_events, alone_samples = await stored(cps["A"])
            assert batched_row == alone_row
            assert batched_row["status"] == "ended"
            assert batched_row["meter_stop_wh"] == (meter_stop or 155.0)
            assert [e["type"] for e in batched_events] == ["session_started", "session_ended"]
            for events in (batched_events, alone_events):
                for event in events:
                    event["payload"] = json.loads(event["payload"])
            assert batched_events == alone_events
            assert batched_samples == alone_samples and all(s["linked"] for s in batched_samples)
    finally:
        await pool.close()


async def test_a_batch_of_updates_and_ends_answers_only_after_its_commit(
    database_dsn: str,
) -> None:
    """Ends ride the updates' statement (no BEGIN and COMMIT): their callers, and the
    session-end hooks, run only once it returned, i.e. after its commit (held here)."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, _ = batched_and_alone(pool, database_dsn)
        committer = batched.group_commit
        assert committer is not None
        committer._lanes = committer._lanes[:1]
        cps = [f"CP-END-HELD-{n}" for n in range(4)]
        await _started_fleet(batched, pool, cps)
        hooked: list[tuple[int, bool]] = []

        async def hook(conn: Any, session_id: int, event: SessionEnded) -> None:
            status = await conn.fetchval("SELECT status FROM sessions WHERE id = $1", session_id)
            hooked.append((session_id, status == "ended"))

        batched.session_end_hooks.append(hook)
        single = committer.single_statements
        async with commits_held(database_dsn) as holder:
            writes = [
                asyncio.create_task(batched.end_session(_end(cps[0], 5, None), Protocol.V201)),
                asyncio.create_task(batched.end_session(_end(cps[1], 5, 900.0), Protocol.V201)),
                asyncio.create_task(batched.update_session(_update(cps[2], 1), Protocol.V201)),
                asyncio.create_task(batched.update_session(_update(cps[3], 1), Protocol.V201)),
            ]
            await eventually(lambda: commit_waiting(holder))
            await asyncio.sleep(0.05)  # a wrong committer answered before the commit
            assert not any(task.done() for task in writes)
            assert hooked == []
        await asyncio.wait_for(asyncio.gather(*writes), 10)
        assert committer.single_statements == single + 1
        assert len(hooked) == 2 and all(ended for _, ended in hooked)
        ended = await pool.fetch(
            "SELECT charge_point_id, meter_stop_wh FROM sessions WHERE status = 'ended'"
            " AND charge_point_id = ANY($1::text[]) ORDER BY charge_point_id",
            cps,
        )
        assert [(r["charge_point_id"], r["meter_stop_wh"]) for r in ended] == [
            (cps[0], 155.0), (cps[1], 900.0)
        ]  # fmt: skip
    finally:
        await pool.close()


async def test_many_chargers_updates_and_a_resend_are_one_statement(database_dsn: str) -> None:
    """One batch of several chargers' TransactionEvent Updated (and a resend): written by
    one statement, without BEGIN and COMMIT; the resend writes nothing, the others all."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, alone = batched_and_alone(pool, database_dsn)
        committer = batched.group_commit
        assert committer is not None
        cps = [f"CP-ONE-STMT-{n}" for n in range(5)]
        await _started_fleet(batched, pool, cps)
        first = _update(cps[0], 1)
        await alone.update_session(first, Protocol.V201)  # stored: sent again below
        batches, single = committer.batches, committer.single_statements
        later = [_update(cp, 2) for cp in cps[1:]]
        await asyncio.gather(*(batched.update_session(e, Protocol.V201) for e in [first, *later]))
        # a batch per lane the five chargers fall into: each one statement
        assert 1 <= committer.batches - batches == committer.single_statements - single
        rows = await pool.fetch(
            "SELECT charge_point_id, count(*) AS n FROM events WHERE type = $1"
            " GROUP BY charge_point_id ORDER BY charge_point_id",
            SessionUpdated.type,
        )
        assert {r["charge_point_id"]: r["n"] for r in rows} == dict.fromkeys(cps, 1)
        last = await pool.fetch(
            "SELECT meter_last_wh FROM sessions WHERE charge_point_id = ANY($1::text[])", cps[1:]
        )
        assert [r["meter_last_wh"] for r in last] == [103.0] * 4  # the update's reading
        assert await pool.fetchval(
            "SELECT count(*) FROM meter_samples WHERE charge_point_id = $1", cps[0]
        ) == 2 * len(first.samples)  # the start's and the first update's, not the resend's
    finally:
        await pool.close()


async def test_a_poisoned_update_in_a_one_statement_batch_fails_alone(database_dsn: str) -> None:
    """An update the statement cannot store (its charger is unknown: a foreign-key error)
    fails the batch's statement; each update is then written alone, the others stored."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, _ = batched_and_alone(pool, database_dsn)
        assert batched.group_commit is not None
        cps = [f"CP-POISON-STMT-{n}" for n in range(3)]
        await _started_fleet(batched, pool, cps)
        fallbacks = batched.group_commit.fallbacks
        updates = [_update(cp, 1) for cp in [*cps, "CP-NEVER-REGISTERED"]]
        results = await asyncio.gather(
            *(batched.update_session(e, Protocol.V201) for e in updates), return_exceptions=True
        )
        assert isinstance(results[-1], asyncpg.ForeignKeyViolationError)
        assert not any(isinstance(r, BaseException) for r in results[:-1])
        assert batched.group_commit.fallbacks == fallbacks + 1
        stored = await pool.fetchval(
            "SELECT count(*) FROM events WHERE type = $1 AND charge_point_id = ANY($2::text[])",
            SessionUpdated.type,
            cps,
        )
        assert stored == len(cps)
    finally:
        await pool.close()


async def test_an_update_stored_while_the_batch_waited_for_its_lock_is_a_resend(
    database_dsn: str,
) -> None:
    """Another transaction holds a charger's session lock and stores the same update; the
    batch's statement waits for the lock with a snapshot from before, misses the stored
    event, and fails on events' unique event_id: the fallback writes each message alone,
    where that update is found as a resend (no second event, no second samples) and the
    other charger's is stored."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, _ = batched_and_alone(pool, database_dsn)
        committer = batched.group_commit
        assert committer is not None
        committer._lanes = committer._lanes[:1]  # one lane: both chargers in one batch
        cps = ["CP-RACE-A", "CP-RACE-B"]
        await _started_fleet(batched, pool, cps)
        raced, other = _update(cps[0], 1), _update(cps[1], 1)
        holder = await asyncpg.connect(database_dsn)
        try:
            async with holder.transaction():
                await session_events.record(holder, raced, Protocol.V201, None)
                writes = asyncio.gather(
                    batched.update_session(raced, Protocol.V201),
                    batched.update_session(other, Protocol.V201),
                )
                await eventually(
                    lambda: pool.fetchval(
                        "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory'"
                        " AND NOT granted AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                )
            await writes
        finally:
            await holder.close()
        assert committer.fallbacks == 1
        for cp, events, samples in ((cps[0], 1, 2), (cps[1], 1, 2)):
            assert (
                await pool.fetchval(
                    "SELECT count(*) FROM events WHERE type = $1 AND charge_point_id = $2",
                    SessionUpdated.type,
                    cp,
                )
                == events
            )
            assert await pool.fetchval(
                "SELECT count(*) FROM meter_samples WHERE charge_point_id = $1", cp
            ) == samples * len(raced.samples)  # the start's and one update's
    finally:
        await pool.close()


async def test_a_one_statement_batch_of_updates_answers_only_after_its_commit(
    database_dsn: str,
) -> None:
    """The updates' statement runs without BEGIN and COMMIT: its callers are answered only
    once it returned, i.e. after its commit (held here), in each charger's order."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        batched, _ = batched_and_alone(pool, database_dsn)
        committer = batched.group_commit
        assert committer is not None
        committer._lanes = committer._lanes[:1]
        cps = [f"CP-HELD-{n}" for n in range(3)]
        await _started_fleet(batched, pool, cps)
        single = committer.single_statements
        async with commits_held(database_dsn) as holder:
            updates = [
                asyncio.create_task(batched.update_session(_update(cp, 1), Protocol.V201))
                for cp in cps
            ]
            await eventually(lambda: commit_waiting(holder))
            await asyncio.sleep(0.05)  # a wrong committer answered before the commit
            assert not any(task.done() for task in updates)
        await asyncio.wait_for(asyncio.gather(*updates), 10)
        assert committer.single_statements == single + 1
        # Each charger twice in one batch (seqNo 3, then 2): two segments, in that order.
        later = [
            batched.update_session(_update(cp, k), Protocol.V201) for cp in cps for k in (2, 3)
        ]
        await asyncio.wait_for(asyncio.gather(*later), 10)
        rows = await pool.fetch(
            "SELECT charge_point_id, array_agg((payload->>'seq_no')::int ORDER BY id) AS seq"
            " FROM events WHERE type = $1 GROUP BY charge_point_id",
            SessionUpdated.type,
        )
        assert {r["charge_point_id"]: r["seq"] for r in rows} == {cp: [1, 3, 2] for cp in cps}
    finally:
        await pool.close()


def _returns(value: str) -> Any:
    async def apply(_conn: Any) -> str:
        return value

    return apply


async def test_writes_of_one_window_share_one_batch_whatever_their_lanes(
    database_dsn: str,
) -> None:
    """Below saturation one window collects every charger's write: a charger with nothing
    in a lane joins the lane whose window is open (hashed lanes split them)."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        committer = GroupCommitter(pool, window=0.05, max_batch=100, lanes=2)
        names = [f"CP-{n}" for n in range(8)]
        results = await asyncio.gather(*(committer.submit(Write(cp, _returns(cp))) for cp in names))
        assert results == names
        assert committer.batches == 1
    finally:
        await pool.close()


async def test_a_chargers_next_write_waits_for_its_write_in_flight(database_dsn: str) -> None:
    """While a charger's write is in a batch not yet committed, its next write waits in that
    lane (never in another lane's batch, which could commit first); another charger's write
    goes to a free lane and is committed meanwhile."""
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    try:
        committer = GroupCommitter(pool, window=0.01, max_batch=100, lanes=2)
        started, gate = asyncio.Event(), asyncio.Event()

        async def stuck(_conn: Any) -> str:
            started.set()
            await gate.wait()
            return "X1"

        first = asyncio.create_task(committer.submit(Write("CP-X", stuck)))
        await asyncio.wait_for(started.wait(), 10)
        other = asyncio.create_task(committer.submit(Write("CP-Y", _returns("Y1"))))
        second = asyncio.create_task(committer.submit(Write("CP-X", _returns("X2"))))
        assert await asyncio.wait_for(other, 10) == "Y1"
        assert not second.done()  # behind its charger's write in flight
        gate.set()
        assert await asyncio.wait_for(first, 10) == "X1"
        assert await asyncio.wait_for(second, 10) == "X2"
        assert committer._holders == {}  # every charger free again
    finally:
        await pool.close()
