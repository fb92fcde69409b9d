"""Alert bursts: many findings at once are stored together, and the gauge stays exact.

A saturated fleet trips a rule on hundreds of chargers within seconds. The
engine stores a turn's findings in one transaction (falling back to one per
finding when that fails) and counts the ``csms_alerts_open`` gauge itself,
without a query per alert: these tests hold it to Postgres's truth through
bursts, auto and operator resolutions (on the engine's node and on another)
and a takeover.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from csms.events import ConnectorStatus, ConnectorStatusChanged, MeterSample, MeterSampled
from csms.monitoring import alerts_store
from csms.monitoring.alerts import Lifecycle, Severity
from csms.monitoring.alerts_service import AlertService
from csms.monitoring.alerts_store import FindingRow
from csms.monitoring.metrics import REGISTRY
from csms.monitoring.rules import (
    STUCK_METER,
    TEMPERATURE_HIGH,
    VOLTAGE_OUT_OF_BAND,
    Finding,
)
from csms.storage import api_keys, event_log
from tests.api_clients import api_client
from tests.conftest import RunningCsms, StartCsms
from tests.csms.cluster.test_two_nodes import two_nodes
from tests.csms.monitoring.alerting import FAST_ALERTS
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)

Counts = dict[tuple[str, str], int]


def status(charge_point_id: str, faulted: bool) -> ConnectorStatusChanged:
    return ConnectorStatusChanged(
        charge_point_id=charge_point_id,
        occurred_at=datetime.now(UTC),
        evse_id=1,
        connector_id=1,
        status=ConnectorStatus.FAULTED if faulted else ConnectorStatus.AVAILABLE,
        error_code="GroundFailure" if faulted else None,
    )


async def commit(node: RunningCsms, events: list[ConnectorStatusChanged]) -> None:
    """Store events as chargers' messages would (one transaction: one page of the feed)."""
    async with node.pool.acquire() as conn, conn.transaction():
        await event_log.append_many(conn, events)
    node.app.bus.publish()


def engine_of(node: RunningCsms) -> AlertService:
    return next(s for s in node.app.services if isinstance(s, AlertService))


async def stored_counts(pool: asyncpg.Pool) -> Counts:
    rows = await pool.fetch(
        "SELECT severity, rule, count(*) AS n FROM alerts WHERE status <> 'resolved' "
        "GROUP BY severity, rule"
    )
    return {(r["severity"], r["rule"]): int(r["n"]) for r in rows}


def gauge() -> Counts:
    return {
        (s.labels["severity"], s.labels["rule"]): int(s.value)
        for metric in REGISTRY.collect()
        if metric.name == "csms_alerts_open"
        for s in metric.samples
        if s.value > 0
    }


async def gauge_is(pool: asyncpg.Pool, expected: Counts) -> bool:
    """The gauge shows ``expected``, which is what Postgres holds (no drift)."""
    stored = await stored_counts(pool)
    return gauge() == stored == expected


async def test_a_burst_opens_each_alert_once_in_few_transactions(start_csms: StartCsms) -> None:
    node = await start_csms(**FAST_ALERTS)
    engine = engine_of(node)
    before = engine.writer.transactions
    # 100 chargers fault at once; 20 of them say so twice in the same page of the feed.
    burst = [status(f"B-{i}", True) for i in range(100)] + [
        status(f"B-{i}", True) for i in range(20)
    ]
    await commit(node, burst)
    critical = {("critical", "connector_faulted"): 100}

    async def all_stored() -> bool:
        folded = await node.pool.fetchval("SELECT coalesce(sum(count), 0) FROM alerts")
        return folded == 120 and await gauge_is(node.pool, critical)

    await eventually(all_stored, within=20)
    rows = await node.pool.fetch(
        "SELECT charge_point_id, count, jsonb_array_length(evidence) AS evidence FROM alerts"
    )
    assert len(rows) == 100  # each opened once
    twice = {r["charge_point_id"] for r in rows if r["count"] == 2}
    assert twice == {f"B-{i}" for i in range(20)}
    assert all(r["evidence"] == r["count"] for r in rows)  # refreshed, evidence appended
    opened = await node.pool.fetchval("SELECT count(*) FROM events WHERE type = 'alert_opened'")
    assert opened == 100
    # One transaction per turn of the feed, not one per finding (120 before).
    assert engine.writer.transactions - before < 10


async def test_a_poisoned_finding_fails_alone(start_csms: StartCsms) -> None:
    node = await start_csms(**FAST_ALERTS)
    engine = engine_of(node)

    def finding(**evidence: Any) -> Finding:
        return Finding("connector_faulted", Severity.CRITICAL, 1, 1, "Faulted", evidence)

    # NaN is no JSON: Postgres refuses that evidence, and with it the turn's transaction.
    await engine.apply_many(
        {
            "P-1": [finding(n=1)],
            "P-2": [finding(n=float("nan"))],
            "P-3": [finding(n=3)],
        },
        datetime.now(UTC),
    )
    stored = await node.pool.fetch("SELECT charge_point_id FROM alerts ORDER BY id")
    assert [r["charge_point_id"] for r in stored] == ["P-1", "P-3"]
    events = await node.pool.fetch(
        "SELECT charge_point_id FROM events WHERE type = 'alert_opened' ORDER BY id"
    )
    assert [r["charge_point_id"] for r in events] == ["P-1", "P-3"]
    assert {k[0] for k in engine.lifecycle.unresolved} == {"P-1", "P-3"}
    assert await gauge_is(node.pool, {("critical", "connector_faulted"): 2})


@pytest.fixture
async def operator_of() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(node: RunningCsms) -> httpx.AsyncClient:
        _, key = await api_keys.create(node.pool, f"ops-{len(clients)}", "operator")
        base = node.app.api_url.replace("://localhost", "://127.0.0.1")
        client = api_client(base, key)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_the_gauge_follows_postgres_through_resolutions_and_a_takeover(
    start_csms: StartCsms, operator_of: Any
) -> None:
    a, b = await two_nodes(start_csms, **FAST_ALERTS)
    assert a.app.leases.holds("alerts")
    rule = ("critical", "connector_faulted")
    await commit(a, [status(f"G-{i}", True) for i in range(30)])
    await eventually(lambda: gauge_is(a.pool, {rule: 30}), within=20)

    # Ten recover: resolved by the engine once the hold is over.
    await commit(a, [status(f"G-{i}", False) for i in range(10)])
    await eventually(lambda: gauge_is(a.pool, {rule: 20}), within=20)

    # Operators resolve five through the other node, one through the engine's.
    ids = [r["id"] for r in await a.pool.fetch(
        "SELECT id FROM alerts WHERE status <> 'resolved' ORDER BY id LIMIT 6"
    )]  # fmt: skip
    on_b, on_a = await operator_of(b), await operator_of(a)
    for alert_id in ids[:5]:
        assert (await on_b.post(f"/alerts/{alert_id}/resolve")).status_code == 200
    assert (await on_a.post(f"/alerts/{ids[5]}/resolve")).status_code == 200
    await eventually(lambda: gauge_is(a.pool, {rule: 14}), within=20)

    # The engine's node goes; B takes the lease over and exports the same count.
    await a.app.stop()
    await eventually(lambda: asyncio.sleep(0, b.app.leases.holds("alerts")), within=20)
    await eventually(lambda: gauge_is(b.pool, {rule: 14}), within=20)
    # And keeps it: a new burst, and a recovery, under the new engine.
    await commit(b, [status(f"H-{i}", True) for i in range(5)] + [status("G-29", False)])
    await eventually(lambda: gauge_is(b.pool, {rule: 18}), within=20)


def test_the_lifecycle_counts_follow_severity_reopening_and_resolution() -> None:
    lifecycle = Lifecycle()
    warn, crit = ("warning", "r"), ("critical", "r")
    lifecycle.opened(("A", 1, 1, "r"), 1, "warning")
    lifecycle.opened(("B", 1, 1, "r"), 2, "warning")
    assert lifecycle.counts() == {warn: 2}
    lifecycle.refreshed(("A", 1, 1, "r"), 1, "critical")  # a warning turned critical
    assert lifecycle.counts() == {warn: 1, crit: 1}
    lifecycle.refreshed(("C", None, None, "r"), 7, "warning")  # opened before a restart
    assert lifecycle.counts() == {warn: 2, crit: 1}
    assert lifecycle.key_of(7) == ("C", None, None, "r")
    lifecycle.resolved(("A", 1, 1, "r"))
    lifecycle.resolved(("A", 1, 1, "r"))  # twice (the engine, then the operator's event)
    assert lifecycle.counts() == {warn: 2}
    lifecycle.opened(("B", 1, 1, "r"), 9, "warning")  # reopened under a new id
    assert lifecycle.counts() == {warn: 2} and lifecycle.key_of(2) is None
    now = datetime.now(UTC)
    lifecycle.cleared(("B", 1, 1, "r"), now - timedelta(seconds=10))
    assert lifecycle.due(now, 5.0) == [(("B", 1, 1, "r"), 9)]


def test_the_lifecycle_knows_which_chargers_have_an_unresolved_alert() -> None:
    lifecycle = Lifecycle()
    assert not lifecycle.has_unresolved("A")
    lifecycle.opened(("A", 1, 1, "r"), 1, "warning")
    lifecycle.opened(("A", 2, 2, "r"), 2, "warning")
    lifecycle.opened(("A", 1, 1, "r"), 3, "critical")  # reopened: still two
    lifecycle.refreshed(("B", None, None, "r"), 4, "warning")
    lifecycle.resolved(("A", 1, 1, "r"))
    lifecycle.resolved(("A", 1, 1, "r"))  # twice
    assert lifecycle.has_unresolved("A") and lifecycle.has_unresolved("B")
    lifecycle.resolved(("A", 2, 2, "r"))
    lifecycle.resolved(("B", None, None, "r"))
    assert not lifecycle.has_unresolved("A") and not lifecycle.has_unresolved("B")


def meter(charge_point_id: str, celsius: float) -> MeterSampled:
    at = datetime.now(UTC)
    samples = (
        MeterSample(at, "Voltage", 230.0, "V", "L1-N", None, None),
        MeterSample(at, "Current.Import", 16.0, "A", "L1", None, None),
        MeterSample(at, "Temperature", celsius, "Celsius", None, None, None),
        MeterSample(at, "Energy.Active.Import.Register", 1000.0, "Wh", None, None, None),
    )
    return MeterSampled(
        charge_point_id=charge_point_id,
        occurred_at=at,
        evse_id=1,
        connector_id=1,
        transaction_id=None,
        samples=samples,
    )


async def test_clears_reach_the_unresolved_alerts_and_queue_behind_a_finding(
    start_csms: StartCsms,
) -> None:
    """A healthy reading starts the clear hold of its charger's alert (and no other's); the
    clears that follow a finding of the same message wait behind it (the engine skips the
    clears of a charger with nothing unresolved: that must change nothing)."""
    node = await start_csms(**{**FAST_ALERTS, "alerts_tick_interval": 3600.0})
    engine = engine_of(node)
    hot, other = ("T-1", 1, 1, TEMPERATURE_HIGH), ("T-2", 1, 1, VOLTAGE_OUT_OF_BAND)
    engine.lifecycle.opened(hot, 10**9, "critical")
    engine.lifecycle.opened(other, 10**9 + 1, "warning")
    now = datetime.now(UTC)
    engine.observe(meter("T-1", 30.0), now)
    assert engine.lifecycle.unresolved[hot].clear_since == now
    assert engine.lifecycle.unresolved[other].clear_since is None
    assert engine._pending == []
    engine.observe(meter("T-3", 80.0), now)  # nothing unresolved: a finding, then clears
    rules = [(key[0], obs.rule, type(obs).__name__) for key, obs, _ in engine._pending]
    assert rules[0] == ("T-3", TEMPERATURE_HIGH, "Finding")
    assert ("T-3", STUCK_METER, "Clear") in rules[1:]
    engine.observe(meter("T-2", 30.0), now)  # behind the pending finding: queued too
    assert ("T-2", VOLTAGE_OUT_OF_BAND) in [(k[0], o.rule) for k, o, _ in engine._pending]
    assert engine.lifecycle.unresolved[other].clear_since is None
    engine._pending.clear()  # not stored: the alerts opened above have no rows


async def test_the_feed_cursor_waits_for_findings_not_stored_yet(start_csms: StartCsms) -> None:
    """Findings wait for the feed's flush; while it fails, the stored cursor stays behind them
    (a node taking over would handle them again), and a later flush stores them."""
    # No tick (it would flush too): the retries are the feed's, once per idle second.
    node = await start_csms(**{**FAST_ALERTS, "alerts_tick_interval": 3600.0})
    engine = engine_of(node)
    store = engine.writer.store
    attempts = 0

    async def failing(lifecycle: Lifecycle, batch: list[Any]) -> None:
        nonlocal attempts
        attempts += 1
        if broken:
            raise ConnectionError("database unreachable")
        await store(lifecycle, batch)

    broken = True
    engine.writer.store = failing  # type: ignore[method-assign]
    await commit(node, [status("F-1", True)])
    event_id = await node.pool.fetchval("SELECT max(id) FROM events")
    # Handled, then retried twice by the idle feed, each time instead of a checkpoint.
    await eventually(lambda: asyncio.sleep(0, attempts >= 3), within=20)

    async def cursor() -> int:
        return int(
            await node.pool.fetchval(
                "SELECT coalesce(max(event_id), 0) FROM feed_cursors WHERE name = 'alerts'"
            )
        )

    assert await cursor() < event_id
    assert await node.pool.fetchval("SELECT count(*) FROM alerts") == 0
    broken = False
    await eventually(lambda: gauge_is(node.pool, {("critical", "connector_faulted"): 1}))
    await eventually(lambda: asyncio.sleep(0, engine.leader.subscription is not None))

    async def passed() -> bool:
        return await cursor() >= event_id

    await eventually(passed, within=20)


async def test_findings_stored_together_fold_as_one_by_one_would(csms: RunningCsms) -> None:
    """Seven findings of one key in one turn (cap 3) equal seven turns of one finding."""
    t0 = datetime.now(UTC)

    def row(cp: str, n: int) -> FindingRow:
        severity = Severity.WARNING if n < 6 else Severity.CRITICAL  # the last one turns critical
        return FindingRow(cp, 1, 2, "overcurrent", severity, f"finding {n}",
                          t0 + timedelta(seconds=n), {"n": n})  # fmt: skip

    async with csms.pool.acquire() as conn:
        together = await alerts_store.record_findings(
            conn, [row("T-1", n) for n in range(7)] + [row("T-2", 0)], evidence_cap=3
        )
        apart = [
            (await alerts_store.record_findings(conn, [row("A-1", n)], evidence_cap=3))[0]
            for n in range(7)
        ]
    assert [opened for _, opened in together] == [True] + [False] * 6 + [True]
    assert [opened for _, opened in apart] == [True] + [False] * 6
    t1, a1 = together[6][0], apart[6][0]
    assert (t1.count, t1.severity, t1.message, t1.evidence) == (
        a1.count, a1.severity, a1.message, a1.evidence
    ) == (7, Severity.CRITICAL, "finding 6", ({"n": 0}, {"n": 1}, {"n": 6}))  # fmt: skip
    assert (t1.first_seen, t1.last_seen) == (t0, t0 + timedelta(seconds=6))
    assert len({r.id for r, _ in together[:7]}) == 1  # one alert
