"""Webhooks: a receiver on loopback, down for a while, then gets the signed alerts in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from csms.monitoring.alerts import AlertOpened, AlertResolved, Severity
from csms.monitoring.webhooks import SIGNATURE_HEADER, retry_delay, sign, verify
from csms.storage import api_keys, event_log
from tests.conftest import RunningCsms, StartCsms
from tests.waiting import eventually

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAST_RETRIES = {"monitoring_webhook_retry_base": 0.1, "monitoring_webhook_retry_max": 0.4}


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"type":"alert_opened"}'
    header = sign("s3cret-s3cret-s3cret", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify("s3cret-s3cret-s3cret", header, body, now=1_700_000_010)
    assert not verify("s3cret-s3cret-s3cret", header, body + b" ", now=1_700_000_010)
    assert not verify("another-secret-xxxx", header, body, now=1_700_000_010)
    assert not verify("s3cret-s3cret-s3cret", header, body, now=1_700_009_999)  # replayed late
    assert not verify("s3cret-s3cret-s3cret", "garbage", body)


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 2.0, 20.0) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 16.0, 20.0]


@dataclass
class Receiver:
    """A minimal HTTP receiver on 127.0.0.1 that records each POST (headers, body)."""

    port: int
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/csms"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append((headers, body))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def operator_client(csms: RunningCsms) -> AsyncIterator[httpx.AsyncClient]:
    _, key = await api_keys.create(csms.pool, "on-call", "operator")
    base = csms.app.api_url.replace("://localhost", "://127.0.0.1")
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        yield client


AlertEvent = AlertOpened | AlertResolved


def alert(kind: type[AlertEvent], alert_id: int, severity: Severity) -> AlertEvent:
    return kind(
        charge_point_id="WH-1",
        occurred_at=T0,
        alert_id=alert_id,
        rule="voltage_out_of_band",
        severity=severity,
        evse_id=1,
        connector_id=1,
        message="voltage 262 V on phase L1 (nominal 230 V +-10 %)",
        first_seen=T0,
        last_seen=T0,
        count=1,
    )


async def test_receiver_down_then_up_gets_signed_alerts_in_order(start_csms: StartCsms) -> None:
    receiver = Receiver(free_port())  # not listening yet: connection refused
    first = await start_csms(**FAST_RETRIES)
    async with operator_client(first) as client:
        response = await client.post(
            "/webhooks",
            json={"url": receiver.url, "severities": ["critical"], "description": "on-call"},
        )
        assert response.status_code == 201, response.text
        subscription = response.json()
        secret = subscription["secret"]
        await first.pool.execute(
            "INSERT INTO chargers (charge_point_id) VALUES ('WH-1') ON CONFLICT DO NOTHING"
        )
        # Committed alert events (the bus reads them from the event log).
        await event_log.append(first.pool, alert(AlertOpened, 1, Severity.CRITICAL))
        await event_log.append(first.pool, alert(AlertOpened, 2, Severity.WARNING))  # not wanted
        await event_log.append(first.pool, alert(AlertResolved, 1, Severity.CRITICAL))
        first.app.bus.publish()

        async def retried_while_down() -> bool:
            return bool(
                await first.pool.fetchval(
                    "SELECT attempts >= 2 AND status = 'pending' AND last_error IS NOT NULL"
                    " FROM webhook_deliveries ORDER BY id LIMIT 1"
                )
            )

        await eventually(retried_while_down)
        listed = (await client.get(f"/webhooks/{subscription['id']}/deliveries")).json()
        assert [d["status"] for d in listed] == ["pending", "pending"]
        assert "secret" not in (await client.get("/webhooks")).json()[0]

    # The CSMS restarts while the receiver is still down: the deliveries are in Postgres.
    await first.app.stop()
    second = await start_csms(**FAST_RETRIES)
    await receiver.up()
    try:
        await eventually(lambda: _received(receiver, 2), within=10.0)
        await asyncio.sleep(0.3)  # nothing more (no duplicate, no warning alert) arrives
    finally:
        await receiver.down()

    assert len(receiver.received) == 2
    kinds = []
    for headers, body in receiver.received:
        assert verify(secret, headers[SIGNATURE_HEADER.lower()], body)
        assert headers["content-type"] == "application/json"
        payload = json.loads(body)
        assert payload["alert_id"] == 1 and payload["severity"] == "critical"
        assert headers["x-csms-event"] == payload["type"]
        kinds.append(payload["type"])
    assert kinds == ["alert_opened", "alert_resolved"]
    statuses = await second.pool.fetch(
        "SELECT status, attempts FROM webhook_deliveries ORDER BY id"
    )
    assert [r["status"] for r in statuses] == ["delivered", "delivered"]
    assert statuses[0]["attempts"] >= 3  # failed at least twice, then delivered


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


async def test_subscription_validation_and_roles(start_csms: StartCsms) -> None:
    csms = await start_csms()
    async with operator_client(csms) as client:
        bad_url = await client.post("/webhooks", json={"url": "ftp://example.org/x"})
        assert bad_url.status_code == 422
        bad_type = await client.post(
            "/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": ["meter_sampled"]}
        )
        assert bad_type.status_code == 422
        created = await client.post("/webhooks", json={"url": "http://127.0.0.1:9/x"})
        assert created.status_code == 201 and len(created.json()["secret"]) >= 32
        hook_id = created.json()["id"]
        _, reader_key = await api_keys.create(csms.pool, "screen", "read-only")
        forbidden = await client.delete(
            f"/webhooks/{hook_id}", headers={"Authorization": f"Bearer {reader_key}"}
        )
        assert forbidden.status_code == 403
        assert (await client.delete(f"/webhooks/{hook_id}")).status_code == 204
        assert (await client.delete(f"/webhooks/{hook_id}")).status_code == 404


async def test_alert_committed_but_never_published_is_caught_up(start_csms: StartCsms) -> None:
    receiver = Receiver(free_port())
    await receiver.up()
    first = await start_csms(**FAST_RETRIES)
    try:
        async with operator_client(first) as client:
            created = await client.post("/webhooks", json={"url": receiver.url})
            secret = created.json()["secret"]
        # Fault detection committed the alert, then the process died before the bus
        # handed it over: only the event log has it.
        await event_log.append(first.pool, alert(AlertOpened, 5, Severity.WARNING))
        await first.app.stop()
        await start_csms(**FAST_RETRIES)
        await eventually(lambda: _received(receiver, 1))
    finally:
        await receiver.down()
    [(headers, body)] = receiver.received
    assert verify(secret, headers[SIGNATURE_HEADER.lower()], body)
    assert json.loads(body)["alert_id"] == 5
