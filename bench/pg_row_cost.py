"""What one stored event costs Postgres, by storage choice: CPU, WAL and disk per row.

    python -m bench.pg_row_cost payload [--rows 4000] [--rounds 3]
    python -m bench.pg_row_cost samples [--rows 4000] [--rounds 3]
    python -m bench.pg_row_cost layout [--rows 4000] [--rounds 3]
    python -m bench.pg_row_cost status [--rows 4000] [--rounds 3]

On a fresh embedded Postgres with the CSMS's schema (its migrations), one
connection writes the rows the charger path writes and the backend's own CPU
(``/proc/<pid>/stat``: user + system, 10 ms ticks, so thousands of rows a
case), the WAL (``pg_current_wal_insert_lsn``) and the table's growth are
counted per row. Cases run in turns (``--rounds``), so a busy machine slows
them alike; the WAL and disk figures do not depend on the load.

``payload``: a 2.0.1 TransactionEvent(Updated) as the events table keeps it
(eight samples, its session context), 1.5 KB of JSON and over 2 KB as jsonb, so
Postgres compresses it (pglz; the embedded build has no lz4). Cases: as is;
``toast_tuple_target = 8160`` (kept inline, not compressed); ``STORAGE
EXTERNAL`` (out of line, not compressed). Then its read as the bus reads other
workers' rows (``payload::text``, 150 ids a statement).

``samples``: a 1.6 MeterValues of eight samples through the charger path's own
batch statement (``csms.storage.batched_writes``, 40 a batch): as is; without
the health report's index on meter_samples; without the session index too;
with no samples at all (what the eight rows and their copy in the payload add).

``status``: StatusNotifications through the charger path's batch statement
(``record_statuses``, 12 a batch, as the fleet's batches hold), each copied into
``event_history`` (migration 0020): by the per-row trigger (as is), by a
statement-level trigger reading the statement's transition table, and with no
copy at all (what the copy costs); and 1.6 MeterValues (no copy: not a history
type) under each trigger, since a statement-level trigger with a transition table
fires, and keeps the inserted rows, for every insert into ``events``.

``layout``: the eight samples alone (no event), as eight ``meter_samples`` rows
(the statement's shape: unnest of the columns) against one row per meter value
holding the eight samples as arrays (a scratch table ``sample_sets`` with the
same session index): what storing a reading as one row would save.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from csms.events import (
    ConnectorStatus,
    ConnectorStatusChanged,
    MeterSample,
    MeterSampled,
    SessionUpdated,
)
from csms.storage.batched_writes import record_meter_sampled_many, record_statuses
from csms.storage.embedded import start_embedded, stop_embedded
from csms.storage.migrate import migrate

Connection = asyncpg.Connection
BATCH = 40
READ_IDS = 150
_MEASURANDS = (
    ("Energy.Active.Import.Register", 12345.0, "Wh", None),
    ("Power.Active.Import", 7200.5, "W", None),
    ("Current.Import", 10.1, "A", "L1"),
    ("Current.Import", 10.2, "A", "L2"),
    ("Current.Import", 10.3, "A", "L3"),
    ("Voltage", 230.1, "V", "L1-N"),
    ("Voltage", 229.8, "V", "L2-N"),
    ("Temperature", 35.0, "Celsius", None),
)
_CONTEXT = (
    '{"id": 123456, "status": "active", "energy_wh": 12345.0, "id_token": "04A2B3C4D5E6F7",'
    ' "evse_id": 1, "protocol": "ocpp2.0.1", "started_at": "2026-12-06T05:00:00.123456+00:00",'
    ' "token_type": "ISO14443", "updated_at": "2026-12-06T05:06:00.123456+00:00",'
    ' "connector_id": 1, "last_power_w": 7200.5, "meter_start_wh": 1000.0,'
    ' "transaction_id": "5f1c2e9a-6b7d-4c3e-8f90-1a2b3c4d5e6f"}'
)
_INSERT_EVENTS = """
    INSERT INTO events (event_id, type, charge_point_id, evse_id, connector_id, occurred_at,
                        payload, context)
    SELECT e, 'session_updated', c, 1, 1, now(), p::jsonb, $4::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::text[]) AS x(e, c, p)
"""


def samples(i: int, at: datetime) -> tuple[MeterSample, ...]:
    return tuple(
        MeterSample(
            sampled_at=at,
            measurand=m,
            value=v + i % 100,
            unit=u,
            phase=p,
            context="Sample.Periodic",
            location="Outlet",
        )
        for m, v, u, p in _MEASURANDS
    )


def transaction_event(i: int) -> SessionUpdated:
    at = datetime.now(UTC)
    return SessionUpdated(
        event_id=uuid.uuid4(),
        charge_point_id=f"CP-{i % 1000:06d}",
        occurred_at=at,
        transaction_id=str(uuid.uuid4()),
        evse_id=1,
        connector_id=1,
        trigger_reason="MeterValuePeriodic",
        charging_state="Charging",
        seq_no=i % 500,
        samples=samples(i, at),
    )


def meter_value(i: int, with_samples: bool) -> MeterSampled:
    at = datetime.now(UTC)
    return MeterSampled(
        event_id=uuid.uuid4(),
        charge_point_id=f"CP-{i % 1000:06d}",
        occurred_at=at,
        evse_id=1,
        connector_id=1,
        transaction_id=None,
        samples=samples(i, at) if with_samples else (),
    )


class Backend:
    """The CPU seconds and WAL position of one connection's backend."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self.pid = conn, pid

    def cpu(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0

    async def wal(self) -> int:
        return int(await self.conn.fetchval("SELECT pg_current_wal_insert_lsn() - '0/0'"))


Case = tuple[str, str, Callable[[Connection, int], Awaitable[None]]]


async def write_payloads(conn: Connection, rows: int) -> None:
    for start in range(0, rows, BATCH):
        events = [transaction_event(start + j) for j in range(BATCH)]
        await conn.execute(
            _INSERT_EVENTS,
            [e.event_id for e in events],
            [e.charge_point_id for e in events],
            [e.payload_json() for e in events],
            _CONTEXT,
        )


def write_meter_values(with_samples: bool) -> Callable[[Connection, int], Awaitable[None]]:
    async def write(conn: Connection, rows: int) -> None:
        for start in range(0, rows, BATCH):
            await record_meter_sampled_many(
                conn, [meter_value(start + j, with_samples) for j in range(BATCH)]
            )

    return write


_INLINE = "ALTER TABLE events SET (toast_tuple_target = 8160)"
_EXTERNAL = "ALTER TABLE events ALTER COLUMN payload SET STORAGE EXTERNAL"
PAYLOAD_CASES: list[Case] = [
    ("pglz (as is)", "", write_payloads),
    (
        "toast_tuple_target 8160",
        "ALTER TABLE events SET (toast_tuple_target = 8160)",
        write_payloads,
    ),
    (
        "STORAGE EXTERNAL",
        "ALTER TABLE events ALTER COLUMN payload SET STORAGE EXTERNAL",
        write_payloads,
    ),
]
_RESET_PAYLOAD = (
    "ALTER TABLE events RESET (toast_tuple_target);"
    " ALTER TABLE events ALTER COLUMN payload SET STORAGE EXTENDED"
)
SAMPLE_CASES: list[Case] = [
    ("8 samples (as is)", "", write_meter_values(True)),
    ("sequence CACHE 64", "ALTER SEQUENCE meter_samples_id_seq CACHE 64", write_meter_values(True)),
    ("no health index", "DROP INDEX meter_samples_charger_health", write_meter_values(True)),
    (
        "no health, no session index",
        "DROP INDEX meter_samples_charger_health; DROP INDEX meter_samples_session",
        write_meter_values(True),
    ),
    ("no samples at all", "", write_meter_values(False)),
]
_RESET_SAMPLES = """
    ALTER SEQUENCE meter_samples_id_seq CACHE 1;
    CREATE INDEX IF NOT EXISTS meter_samples_session ON meter_samples (session_id, sampled_at);
    CREATE INDEX IF NOT EXISTS meter_samples_charger_health ON meter_samples
        (charge_point_id, sampled_at) WHERE measurand IN ('Temperature', 'Current.Import')
"""


async def run_case(backend: Backend, case: Case, reset: str, rows: int, read: bool) -> list[float]:
    _, ddl, write = case
    conn = backend.conn
    await conn.execute("TRUNCATE events, meter_samples")
    await conn.execute(reset)
    if ddl:
        await conn.execute(ddl)
    await write(conn, BATCH)  # plans made, caches warm
    await conn.execute("TRUNCATE events, meter_samples")
    size0 = await conn.fetchval(_SIZE)
    wal0, cpu0 = await backend.wal(), backend.cpu()
    await write(conn, rows)
    cpu1, wal1 = backend.cpu(), await backend.wal()
    size1 = await conn.fetchval(_SIZE)
    figures = [(cpu1 - cpu0) / rows * 1e6, (wal1 - wal0) / rows, (size1 - size0) / rows]
    if read:
        ids = [r[0] for r in await conn.fetch("SELECT id FROM events")]
        random.shuffle(ids)
        cpu2 = backend.cpu()
        for start in range(0, len(ids), READ_IDS):
            await conn.fetch(
                "SELECT id, payload::text FROM events WHERE id = ANY($1::bigint[])",
                ids[start : start + READ_IDS],
            )
        figures.append((backend.cpu() - cpu2) / max(1, len(ids)) * 1e6)
    return figures


_SAMPLE_ROWS = """
    INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id, sampled_at,
                               measurand, phase, location, context, value, unit)
    SELECT $1, x.s, 1, 1, x.at, x.m, x.p, 'Outlet', 'Sample.Periodic', x.v, x.u
    FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::float8[],
                $7::text[]) AS x(s, at, m, p, v, u)
"""
_SAMPLE_SETS_DDL = """
    CREATE TABLE IF NOT EXISTS sample_sets (
        id bigserial, charge_point_id text NOT NULL, session_id bigint, evse_id integer,
        connector_id integer, sampled_at timestamptz NOT NULL, measurand text[] NOT NULL,
        phase text[], location text[], context text[], value float8[] NOT NULL, unit text[],
        recorded_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX IF NOT EXISTS sample_sets_session ON sample_sets (session_id, sampled_at);
    TRUNCATE sample_sets
"""
_SAMPLE_SETS = """
    INSERT INTO sample_sets (charge_point_id, session_id, evse_id, connector_id, sampled_at,
                             measurand, phase, location, context, value, unit)
    SELECT $1, x.s, 1, 1, x.at, $4::text[], $5::text[], $8::text[], $9::text[],
           ($6::float8[])[(x.i - 1) * $10 + 1 : x.i * $10], $7::text[]
    FROM unnest($2::bigint[], $3::timestamptz[]) WITH ORDINALITY AS x(s, at, i)
"""


def _layout_args(start: int) -> tuple[list[int], list[datetime], list[str], list[str | None]]:
    sessions = [start + j for j in range(BATCH)]
    at = [datetime.now(UTC)] * BATCH
    return sessions, at, [m[0] for m in _MEASURANDS], [m[3] for m in _MEASURANDS]


async def write_sample_rows(conn: Connection, rows: int) -> None:
    for start in range(0, rows, BATCH):
        sessions, at, measurands, phases = _layout_args(start)
        n = len(_MEASURANDS)
        await conn.execute(
            _SAMPLE_ROWS,
            "CP-000001",
            [s for s in sessions for _ in range(n)],
            [a for a in at for _ in range(n)],
            measurands * BATCH,
            phases * BATCH,
            [m[1] + j for j in range(BATCH) for m in _MEASURANDS],
            [m[2] for m in _MEASURANDS] * BATCH,
        )


async def write_sample_sets(conn: Connection, rows: int) -> None:
    for start in range(0, rows, BATCH):
        sessions, at, measurands, phases = _layout_args(start)
        n = len(_MEASURANDS)
        await conn.execute(
            _SAMPLE_SETS,
            "CP-000001",
            sessions,
            at,
            measurands,
            phases,
            [m[1] + j for j in range(BATCH) for m in _MEASURANDS],  # row j: its n values
            [m[2] for m in _MEASURANDS],
            ["Outlet"] * n,
            ["Sample.Periodic"] * n,
            n,
        )


STATUS_BATCH = 12
_STATUSES = (ConnectorStatus.OCCUPIED, ConnectorStatus.AVAILABLE)


async def write_statuses(conn: Connection, rows: int) -> None:
    await conn.execute(
        "INSERT INTO chargers (charge_point_id) SELECT 'CP-' || n FROM generate_series(0, 999) n"
        " ON CONFLICT DO NOTHING"
    )
    for start in range(0, rows, STATUS_BATCH):
        at = datetime.now(UTC)
        await record_statuses(
            conn,
            [
                ConnectorStatusChanged(
                    charge_point_id=f"CP-{(start + j) % 1000}",
                    occurred_at=at,
                    evse_id=1,
                    connector_id=1,
                    status=_STATUSES[(start + j) // 1000 % 2],
                )
                for j in range(STATUS_BATCH)
            ],
        )


_STATEMENT_TRIGGER = """
    CREATE OR REPLACE FUNCTION bench_keep_history_set() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO event_history (id, event_id, type, charge_point_id, evse_id, connector_id,
                                   occurred_at, recorded_at, payload)
        SELECT id, event_id, type, charge_point_id, evse_id, connector_id, occurred_at,
               recorded_at, payload
        FROM inserted WHERE type IN ('charger_booted', 'security_event_reported',
            'firmware_status_changed', 'upload_status_changed', 'charger_connected',
            'charger_disconnected', 'connector_status_changed');
        RETURN NULL;
    END $$;
    ALTER TABLE events DISABLE TRIGGER events_keep_history;
    CREATE TRIGGER bench_keep_history_set AFTER INSERT ON events
        REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
        EXECUTE FUNCTION bench_keep_history_set();
"""
_NO_COPY = "ALTER TABLE events DISABLE TRIGGER events_keep_history"
_RESET_STATUS = """
    DROP TRIGGER IF EXISTS bench_keep_history_set ON events;
    ALTER TABLE events ENABLE TRIGGER events_keep_history;
    TRUNCATE event_history
"""
STATUS_CASES: list[Case] = [
    ("status, row trigger (as is)", "", write_statuses),
    ("status, statement trigger", _STATEMENT_TRIGGER, write_statuses),
    ("status, no history copy", _NO_COPY, write_statuses),
    ("meter value, row trigger", "", write_meter_values(True)),
    ("meter value, statement trigger", _STATEMENT_TRIGGER, write_meter_values(True)),
]

LAYOUT_CASES: list[Case] = [
    ("8 rows (meter_samples)", "", write_sample_rows),
    ("1 row of arrays", _SAMPLE_SETS_DDL, write_sample_sets),
]

_SIZE = """
    SELECT pg_total_relation_size('events') + pg_total_relation_size('meter_samples')
           + coalesce(pg_total_relation_size(to_regclass('sample_sets')), 0)
"""


MODES: dict[str, tuple[list[Case], str, bool]] = {
    "payload": (PAYLOAD_CASES, _RESET_PAYLOAD, True),
    "samples": (SAMPLE_CASES, _RESET_SAMPLES, False),
    "layout": (LAYOUT_CASES, "SELECT 1", False),
    "status": (STATUS_CASES, _RESET_STATUS, False),
}
Figures = dict[str, list[list[float]]]


async def measure(dsn: str, what: str, rows: int, rounds: int) -> Figures:
    """Per case, per round: insert CPU us, WAL bytes, disk bytes (and read CPU us) per row.

    ``dsn``: a migrated database of its own (cases drop indexes and alter tables).
    """
    cases, reset, read = MODES[what]
    conn = await asyncpg.connect(dsn)
    try:
        backend = Backend(conn, await conn.fetchval("SELECT pg_backend_pid()"))
        results: Figures = {name: [] for name, _, _ in cases}
        for _ in range(rounds):
            for case in cases:
                results[case[0]].append(await run_case(backend, case, reset, rows, read))
        return results
    finally:
        await conn.close()


def table(results: Figures, rows: int, rounds: int, read: bool) -> str:
    columns = "insert CPU us, WAL bytes, disk bytes" + (", read CPU us" if read else "")
    lines = [f"per row ({rows} rows a case, {rounds} rounds; CPU: each round): {columns}"]
    for name, figures in results.items():
        cpu = " / ".join(f"{r[0]:.0f}" for r in figures)
        mean = [sum(r[i] for r in figures) / len(figures) for i in range(1, 3)]
        text = f"  {name:30s} {cpu:>20s}  {mean[0]:6.0f} {mean[1]:6.0f}"
        if read:
            text += "  " + " / ".join(f"{r[3]:.1f}" for r in figures)
        lines.append(text)
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="csms-rowcost-") as tmp:
        dsn = await start_embedded(Path(tmp))
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            results = await measure(dsn, args.what, args.rows, args.rounds)
        finally:
            stop_embedded(Path(tmp))
    print(table(results, args.rows, args.rounds, MODES[args.what][2]))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["payload", "samples", "layout", "status"])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    started = time.monotonic()
    code = asyncio.run(run(parser.parse_args()))
    print(f"took {time.monotonic() - started:.0f} s")
    sys.exit(code)


if __name__ == "__main__":
    main()
