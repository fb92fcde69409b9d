"""A transaction's start and end in a few statements, with the same outcome as before.

Counted on the connections the central system takes for them (asyncpg's query
logger: every statement a connection sends, BEGIN and COMMIT included).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from billing import store
from billing.tariff import Tariff
from csms.central import CentralSystem
from csms.events import MeterSample, Protocol, SessionEnded
from tests.conftest import RunningCsms, StartCsms
from tests.ocpp_clients import charger_v16, charger_v201

pytestmark = pytest.mark.timeout(60)

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# What asyncpg asks once per connection about a type it meets for the first time.
_ASYNCPG_INTROSPECTION = ("WITH RECURSIVE typeinfo_tree", "SELECT current_setting('jit')",
                          "SELECT set_config('jit'")  # fmt: skip


class Statements:
    """The statements sent on the connections ``central`` and its group commit acquire
    while recording."""

    def __init__(self, central: CentralSystem) -> None:
        self.sent: list[str] = []
        acquire = central._acquire

        @contextlib.asynccontextmanager
        async def counted(**_options: Any) -> AsyncIterator[Any]:  # the pool's timeout
            async with acquire() as conn:
                conn.add_query_logger(self._log)
                try:
                    yield conn
                finally:
                    conn.remove_query_logger(self._log)

        central._acquire = counted  # type: ignore[assignment]
        if central.group_commit is not None:
            central.group_commit.pool = SimpleNamespace(acquire=counted)  # type: ignore[assignment]

    def _log(self, record: Any) -> None:
        query = " ".join(record.query.split())
        if not query.startswith(_ASYNCPG_INTROSPECTION):
            self.sent.append(query[:40])

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


async def csms_with_tariff(start_csms: StartCsms) -> RunningCsms:
    # Group commit on (one charger: each batch is its one message, to count).
    csms = await start_csms(billing_cost_update_interval=0, billing_sweep_interval=0)
    await csms.add_token("TAG1")
    tariff = Tariff(currency="EUR", price_per_kwh=D("0.50"), flat_fee=D(1), vat_rate=D(0))
    stored = await store.create_tariff(csms.pool, "flat", tariff)
    await store.assign(csms.pool, "default", "", stored.id)
    return csms


def transaction_event(
    event_type: str, seq_no: int, kwh: float, tx: str = "TX-1"
) -> call201.TransactionEvent:
    moment = ts(T0 + timedelta(minutes=30 * seq_no))
    info: dict[str, Any] = {"transaction_id": tx}
    if event_type == "Ended":
        info["stopped_reason"] = "EVDisconnected"
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=moment,
        seq_no=seq_no,
        transaction_info=info,
        trigger_reason="Authorized" if event_type == "Started" else "EVCommunicationLost",
        evse={"id": 1, "connector_id": 1},
        id_token={"id_token": "TAG1", "type": "ISO14443"} if event_type == "Started" else None,
        meter_value=[
            {
                "timestamp": moment,
                "sampled_value": [
                    {"value": kwh * 1000, "measurand": "Energy.Active.Import.Register"}
                ],
            }
        ],
    )


async def test_v201_start_is_four_statements_and_end_three_with_its_cost(
    start_csms: StartCsms,
) -> None:
    csms = await csms_with_tariff(start_csms)
    statements = Statements(csms.app.central)
    cost_reads: list[str] = []
    [read_cost] = csms.app.central.session_cost_readers

    async def counted_read(conn: Any, charge_point_id: str, transaction_id: str) -> Any:
        cost_reads.append(transaction_id)
        return await read_cost(conn, charge_point_id, transaction_id)

    csms.app.central.session_cost_readers[:] = [counted_read]
    async with charger_v201(csms.ocpp_url, "CS-RT") as cs:
        # A first session: the connection's set-up writes and asyncpg's statement cache
        # (a statement's first use on a connection is prepared in a round trip of its own).
        await cs.call(transaction_event("Started", 0, 1.0, "TX-0"))
        await cs.call(transaction_event("Ended", 1, 2.0, "TX-0"))
        statements.take()
        started = await cs.call(transaction_event("Started", 0, 100.0))
        assert started.id_token_info["status"] == "Accepted"
        # BEGIN, lock + resend check + token, the session with its samples and event, COMMIT
        assert len(statements.take()) == 4
        ended = await cs.call(transaction_event("Ended", 1, 110.0))
        end_statements = statements.take()
        # The end (lock, resend check, session, samples, event: one statement, atomic
        # without BEGIN and COMMIT, group commit's bulk writer), then billing's read and
        # billing's write (the CDR with its event): no savepoint, no cost read.
        assert len(end_statements) == 3, end_statements
        assert not [s for s in end_statements if s.startswith(("BEGIN", "SAVEPOINT"))]
        assert cost_reads == []  # the cost came from the end's own transaction
        assert ended.total_cost == 6.0  # 1.00 + 10 kWh x 0.50
        assert ended.updated_personal_message["content"] == "Total: 6.00 EUR"

        again = await cs.call(transaction_event("Ended", 1, 110.0))  # a retransmission
        assert again.total_cost == 6.0  # the same answer, read from the CDR standing
        assert cost_reads == ["TX-1"]
    tx1 = "SELECT id FROM sessions WHERE transaction_id = 'TX-1'"
    assert await csms.pool.fetchval(f"SELECT count(*) FROM cdrs WHERE session_id = ({tx1})") == 1
    ended_events = "SELECT count(*) FROM events WHERE type = $1 AND charge_point_id = 'CS-RT'"
    assert await csms.pool.fetchval(ended_events, "cdr_created") == 2  # TX-0's and TX-1's
    assert await csms.pool.fetchval(ended_events, "session_ended") == 2
    session = await csms.pool.fetchrow("SELECT * FROM sessions WHERE transaction_id = 'TX-1'")
    assert session is not None
    assert session["status"] == "ended" and session["meter_stop_wh"] == 110_000
    assert session["meter_start_wh"] == 100_000 and session["auth_status"] == "Accepted"
    context = await csms.pool.fetchval(
        "SELECT context::text FROM events WHERE type = 'session_ended' ORDER BY id DESC LIMIT 1"
    )
    assert '"meter_stop_wh": 110000' in context and '"status": "ended"' in context


async def test_v16_start_is_four_statements_and_end_three(start_csms: StartCsms) -> None:
    csms = await csms_with_tariff(start_csms)
    statements = Statements(csms.app.central)
    async with charger_v16(csms.ocpp_url, "CP-RT") as cp:
        warm_up = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=0,
                                    timestamp=ts(T0 - timedelta(hours=1)))
        )  # fmt: skip
        await cp.call(call16.StopTransaction(meter_stop=1, timestamp=ts(T0),
                                             transaction_id=warm_up.transaction_id))  # fmt: skip
        statements.take()
        start = call16.StartTransaction(
            connector_id=1, id_tag="TAG1", meter_start=1000, timestamp=ts(T0)
        )
        first = await cp.call(start)
        assert len(statements.take()) == 4
        assert first.id_tag_info["status"] == "Accepted"
        stop = call16.StopTransaction(
            meter_stop=11_000, timestamp=ts(T0 + timedelta(hours=1)),
            transaction_id=first.transaction_id,
        )  # fmt: skip
        await cp.call(stop)
        assert len(statements.take()) == 3  # the end's statement, billing's read and write
        await cp.call(stop)  # a retransmission: nothing written again
    session = await csms.pool.fetchrow(
        "SELECT * FROM sessions WHERE transaction_id = $1", str(first.transaction_id)
    )
    assert session is not None
    cdrs = await csms.pool.fetch("SELECT total_cost FROM cdrs WHERE session_id = $1", session["id"])
    assert [c["total_cost"] for c in cdrs] == [D("6.00")]
    assert str(session["transaction_id"]) == str(first.transaction_id)
    assert session["meter_stop_wh"] == 11_000 and session["status"] == "ended"
    started = await csms.pool.fetchval(
        "SELECT payload->>'transaction_id' FROM events WHERE type = 'session_started'"
        " ORDER BY id DESC LIMIT 1"
    )
    assert started == str(first.transaction_id)  # the id the CSMS assigned, in the event


async def test_a_failing_end_hook_keeps_the_end_and_the_other_hooks(
    start_csms: StartCsms,
) -> None:
    csms = await csms_with_tariff(start_csms)
    called: list[int] = []

    async def failing(conn: Any, session_id: int, event: SessionEnded) -> None:
        called.append(session_id)
        await conn.execute("SELECT 1 / 0")

    csms.app.central.session_end_hooks.insert(0, failing)
    async with charger_v201(csms.ocpp_url, "CS-F") as cs:
        await cs.call(transaction_event("Started", 0, 100.0))
        ended = await cs.call(transaction_event("Ended", 1, 110.0))
    assert len(called) == 1
    assert await csms.pool.fetchval("SELECT status FROM sessions") == "ended"
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE type = 'session_ended'") == 1
    # The end committed before the hooks ran; billing's hook ran after the failing one.
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 1
    assert ended.total_cost == 6.0


async def test_a_resent_end_whose_cdr_is_missing_is_priced_before_its_answer(
    start_csms: StartCsms,
) -> None:
    """A crash between the end's commit and its CDR: the charger, unanswered, sends the
    end again; that answer carries the cost of a CDR made for it."""
    csms = await csms_with_tariff(start_csms)
    hooks = csms.app.central.session_end_hooks
    billing_hook = list(hooks)
    hooks.clear()  # the first end commits and "crashes" before any hook
    async with charger_v201(csms.ocpp_url, "CS-R") as cs:
        await cs.call(transaction_event("Started", 0, 100.0))
        first = await cs.call(transaction_event("Ended", 1, 110.0))
        assert first.total_cost is None
        assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 0
        hooks.extend(billing_hook)
        again = await cs.call(transaction_event("Ended", 1, 110.0))
    assert again.total_cost == 6.0
    assert await csms.pool.fetchval("SELECT count(*) FROM cdrs") == 1
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE type = 'session_ended'") == 1


def register(wh: float, at: datetime) -> MeterSample:
    return MeterSample(at, "Energy.Active.Import.Register", wh, "Wh")


async def test_the_stop_reading_is_the_meter_stop_else_the_latest_reading(
    start_csms: StartCsms,
) -> None:
    csms = await start_csms(billing_cost_update_interval=0, billing_sweep_interval=0)
    central = csms.app.central
    base: dict[str, Any] = {"charge_point_id": "CP-STOP", "occurred_at": T0 + timedelta(hours=1)}
    await csms.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-STOP')")
    # Never seen starting, samples in the end, no meterStop: the end's latest reading.
    await central.end_session(
        SessionEnded(**base, transaction_id="A", samples=(
            register(500, T0), register(900, T0 + timedelta(minutes=50)))),
        Protocol.V201,
    )  # fmt: skip
    # A meterStop wins over the samples.
    await central.end_session(
        SessionEnded(**base, transaction_id="B", meter_stop_wh=1200,
                     samples=(register(900, T0),)),
        Protocol.V201,
    )  # fmt: skip
    # Samples older than the stored latest reading leave it the stop reading.
    await central.end_session(
        SessionEnded(**base, transaction_id="C", samples=(register(700, T0 + timedelta(hours=1)),)),
        Protocol.V201,
    )  # fmt: skip
    await central.end_session(
        SessionEnded(**base, transaction_id="C", seq_no=9, samples=(register(650, T0),)),
        Protocol.V201,
    )  # fmt: skip
    rows = await csms.pool.fetch(
        "SELECT transaction_id, meter_stop_wh, meter_last_wh FROM sessions ORDER BY transaction_id"
    )
    assert [(r["transaction_id"], r["meter_stop_wh"]) for r in rows] == [
        ("A", 900), ("B", 1200), ("C", 700)
    ]  # fmt: skip
