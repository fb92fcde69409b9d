"""Two CSMS nodes on one database: each sees the other's chargers; singletons run once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from csms.monitoring import metrics
from csms.monitoring.alerts import AlertOpened, AlertResolved, Severity
from csms.monitoring.alerts_service import AlertService
from csms.monitoring.live_service import LiveMonitoringService
from csms.storage import api_keys, event_log
from tests.conftest import RunningCsms, StartCsms
from tests.csms.cluster.test_leases import kill_sessions_of
from tests.csms.monitoring.alerting import FAST_ALERTS
from tests.csms.monitoring.test_alerts import boot16, status16
from tests.csms.monitoring.test_stream import listening
from tests.csms.monitoring.test_webhooks import FAST_RETRIES, Receiver, alert, free_port
from tests.ocpp_clients import charger_v16
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)


@contextlib.asynccontextmanager
async def client(node: RunningCsms, role: str = "operator") -> AsyncIterator[httpx.AsyncClient]:
    _, key = await api_keys.create(node.pool, f"{role}-{node.app.node_id}", role)
    base = node.app.api_url.replace("://localhost", "://127.0.0.1")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as made:
        yield made


async def two_nodes(start_csms: StartCsms, **settings: Any) -> tuple[RunningCsms, RunningCsms]:
    a = await start_csms(node_id="node-a", **settings)
    b = await start_csms(node_id="node-b", **settings)
    return a, b


async def test_the_stream_on_one_node_shows_a_charger_on_the_other(
    start_csms: StartCsms,
) -> None:
    a, b = await two_nodes(start_csms)
    async with client(a, "read-only") as reader, listening(reader) as listener:
        async with charger_v16(b.ocpp_url, "CP-ON-B") as cp:
            await boot16(cp)
            await cp.call(status16(1, "Faulted", "GroundFailure"))

            async def seen() -> bool:
                return any(
                    e["charge_point_id"] == "CP-ON-B" and e["status"] == "Faulted"
                    for e in listener.of_type("connector_status_changed")
                )

            await eventually(seen, within=10)
    assert a.app.registry.get("CP-ON-B") is None  # the socket really is on node B


@pytest.mark.parametrize("how", ["stopped", "lease_connection_lost"])
async def test_an_alert_opened_under_one_node_resolves_under_the_other(
    start_csms: StartCsms, how: str
) -> None:
    """The engine's node stops, or loses its database session (as a crash or a cut would)."""
    a, b = await two_nodes(start_csms, **FAST_ALERTS)
    assert a.app.leases.holds("alerts") and not b.app.leases.holds("alerts")
    async with charger_v16(b.ocpp_url, "CP-AL") as cp:
        await boot16(cp)
        await cp.call(status16(1, "Faulted", "GroundFailure"))

        async def opened() -> int | None:
            value = await b.pool.fetchval(
                "SELECT id FROM alerts WHERE charge_point_id = 'CP-AL' AND resolved_at IS NULL"
            )
            return None if value is None else int(value)

        alert_id = await eventually(opened, within=10)
        engine_a = next(s for s in a.app.services if isinstance(s, AlertService))
        if how == "stopped":
            await a.app.stop()  # the engine's node goes: B takes the lease over
        else:
            await kill_sessions_of(a.app.dsn or "", "node-a")
        await eventually(lambda: _holds(b, "alerts"), within=15)
        assert not engine_a.leader.leading  # never two engines
        await cp.call(status16(1, "Available"))

        async def resolved() -> bool:
            return bool(
                await b.pool.fetchval(
                    "SELECT resolved_at IS NOT NULL FROM alerts WHERE id = $1", alert_id
                )
            )

        await eventually(resolved, within=10)
    count = await b.pool.fetchval("SELECT count(*) FROM alerts WHERE charge_point_id = 'CP-AL'")
    assert count == 1  # B did not open a second one: it took the open alert over


async def _holds(node: RunningCsms, lease: str) -> bool:
    return node.app.leases.holds(lease)


async def test_webhooks_are_delivered_once_with_two_nodes(start_csms: StartCsms) -> None:
    receiver = Receiver(free_port())
    await receiver.up()
    try:
        a, b = await two_nodes(start_csms, **FAST_RETRIES)
        async with client(b) as operator:
            created = await operator.post("/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
        await a.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('WH-1')")
        for n in range(1, 6):  # committed through either node
            node = (a, b)[n % 2]
            await event_log.append(node.pool, alert(AlertOpened, n, Severity.CRITICAL))
            await event_log.append(node.pool, alert(AlertResolved, n, Severity.CRITICAL))
            node.app.bus.publish()
        await eventually(lambda: _received(receiver, 10), within=15)
        for node in (a, b):  # everything has been read on both nodes
            assert await node.app.bus.caught_up()
        delivered = await a.pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
        )
    finally:
        await receiver.down()
    assert len(receiver.received) == 10 and delivered == 10


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


async def test_no_duplicate_downtime_or_status_history_with_two_nodes(
    start_csms: StartCsms,
) -> None:
    a, b = await two_nodes(start_csms)
    for round_ in range(3):
        node = (a, b)[round_ % 2]  # the charger moves between nodes
        async with charger_v16(node.ocpp_url, "CP-DT") as cp:
            await boot16(cp)
            await cp.call(status16(1, "Available"))
            await cp.call(status16(1, ("Preparing", "Charging", "Unavailable")[round_]))
        # The old node records the close before the charger shows up on the other one: a
        # close recorded after the charger moved is fenced off (no downtime: it never was
        # offline for the cluster), and which comes first is a race of the two nodes.
        await eventually(lambda: _offline(a.pool, "CP-DT"))

    async def settled() -> bool:
        return bool(
            await a.pool.fetchval(
                "SELECT count(*) = 3 FROM charger_downtime WHERE charge_point_id = 'CP-DT'"
            )
        )

    await eventually(settled, within=10)
    for node in (a, b):
        assert await node.app.bus.caught_up()
    downtime = await a.pool.fetch(
        "SELECT started_at, ended_at FROM charger_downtime WHERE charge_point_id = 'CP-DT'"
        " ORDER BY started_at"
    )
    assert len(downtime) == 3  # one per disconnect, written once in the cluster
    assert [r["ended_at"] is None for r in downtime] == [False, False, True]
    history = await a.pool.fetch(
        "SELECT status FROM connector_status_history WHERE charge_point_id = 'CP-DT'"
        " ORDER BY started_at, id"
    )
    # Each status change once (1.6 Preparing and Charging are Occupied).
    assert [r["status"] for r in history] == [
        "Available", "Occupied", "Available", "Occupied", "Available", "Unavailable",
    ]  # fmt: skip
    open_intervals = await a.pool.fetchval(
        "SELECT count(*) FROM connector_status_history"
        " WHERE charge_point_id = 'CP-DT' AND ended_at IS NULL"
    )
    assert open_intervals == 1


async def test_rule_windows_survive_the_engine_moving_to_another_node(
    start_csms: StartCsms,
) -> None:
    """Three boots within ten minutes are a reboot loop, even if the engine moved after two."""
    a, b = await two_nodes(start_csms, **FAST_ALERTS)
    engine_a = next(s for s in a.app.services if isinstance(s, AlertService))
    for _ in range(2):
        async with charger_v16(b.ocpp_url, "CP-LOOP") as cp:
            await boot16(cp)

    async def evaluated_both() -> bool:
        boots = await a.pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'charger_booted'"
            " AND charge_point_id = 'CP-LOOP'"
        )
        return bool(boots == 2 and engine_a.evaluated >= 6)  # connects, boots, disconnects

    await eventually(evaluated_both, within=10)
    await a.app.stop()  # the engine moves to B, which has seen no boot as the engine
    await eventually(lambda: _holds(b, "alerts"), within=15)
    async with charger_v16(b.ocpp_url, "CP-LOOP") as cp:
        await boot16(cp)

        async def loop_found() -> bool:
            return bool(
                await b.pool.fetchval(
                    "SELECT count(*) = 1 FROM alerts"
                    " WHERE charge_point_id = 'CP-LOOP' AND rule = 'reboot_loop'"
                )
            )

        await eventually(loop_found, within=10)


async def test_cluster_wide_gauges_come_from_the_lease_holder_only(
    start_csms: StartCsms,
) -> None:
    a, b = await two_nodes(start_csms)
    await a.pool.execute("INSERT INTO chargers (charge_point_id) VALUES ('CP-G')")
    await a.pool.execute(
        "INSERT INTO sessions (charge_point_id, transaction_id, protocol, status, started_at)"
        " VALUES ('CP-G', 'T-1', 'ocpp1.6', 'active', now())"
    )
    live_a = next(s for s in a.app.services if isinstance(s, LiveMonitoringService))
    live_b = next(s for s in b.app.services if isinstance(s, LiveMonitoringService))
    assert live_a.leader.leading and not live_b.leader.leading
    # Both nodes live in this test process and share one metrics registry: the last
    # refresh is what a scrape of that node would export.
    await live_b.refresh_gauges()
    assert metrics.SESSIONS_ACTIVE._value.get() == 0  # a sum over nodes counts it once
    await live_a.refresh_gauges()
    assert metrics.SESSIONS_ACTIVE._value.get() == 1
    assert metrics.CLUSTER_LEADER.labels("monitoring")._value.get() == 1


async def read_stream(
    reader: httpx.AsyncClient, count: int, headers: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` messages of a stream opened with ``headers``."""
    got: list[tuple[str, dict[str, Any]]] = []
    async with reader.stream(
        "GET", "/stream", params={"charger": "CP-RESUME"}, headers=headers, timeout=30
    ) as response:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                got.append((kind, json.loads(line[5:])))
                if len(got) == count:
                    break
    return got


async def test_a_stream_resumed_with_last_event_id_gets_what_it_missed(
    start_csms: StartCsms,
) -> None:
    """Reconnecting to the other node with Last-Event-ID: the missed events, then live ones."""
    a, b = await two_nodes(start_csms)
    async with (
        client(a, "read-only") as on_a,
        client(b, "read-only") as on_b,
        charger_v16(b.ocpp_url, "CP-RESUME") as cp,
    ):
        await boot16(cp)
        first = asyncio.create_task(read_stream(on_a, 1))
        await asyncio.sleep(0.5)  # connected
        await cp.call(status16(1, "Preparing"))
        [(_, seen)] = await asyncio.wait_for(first, 10)
        for status in ("Charging", "Finishing", "Available"):  # while disconnected
            await cp.call(status16(1, status))
        assert await b.app.bus.caught_up()
        resumed = asyncio.create_task(read_stream(on_b, 4, {"Last-Event-ID": seen["event_id"]}))
        await asyncio.sleep(0.5)
        await cp.call(status16(1, "Unavailable"))  # live, after the replay
        got = await asyncio.wait_for(resumed, 10)
        reset = await read_stream(on_b, 1, {"Last-Event-ID": "not-an-event"})
    assert [body["status"] for _, body in got] == [
        "Occupied",
        "Occupied",
        "Available",
        "Unavailable",
    ]
    assert [body["detail"] for _, body in got[:3]] == ["Charging", "Finishing", "Available"]
    assert len({body["event_id"] for _, body in got}) == 4
    assert reset[0][0] == "stream_reset"


async def _offline(pool: Any, charge_point_id: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT NOT connected FROM chargers WHERE charge_point_id = $1", charge_point_id
        )
    )
