"""The relay against a real broker: a full session of each OCPP version, re-sends, kafka-init."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest

from csms.outbox import relay as relay_module
from csms.outbox import schemas, store
from csms.outbox.envelope import kafka_key
from csms.outbox.topics import TOPIC_OF_TYPE
from tests.conftest import StartCsms
from tests.csms.outbox.conftest import Received, TansuProcess, read_topics, wait_published
from tests.csms.outbox.frames import session_v16, session_v201
from tests.ocpp_clients import raw_charger


def dedupe(received: list[Received]) -> list[Received]:
    seen: set[str] = set()
    unique = []
    for record in received:
        if record.envelope["event_id"] not in seen:
            seen.add(record.envelope["event_id"])
            unique.append(record)
    return unique


async def expected_order(pool: Any) -> dict[tuple[str, str], list[str]]:
    """(topic, charger) -> event ids in outbox order, as the broker must deliver them."""
    rows = await pool.fetch(
        "SELECT event_id, type, charge_point_id, evse_id, connector_id, payload "
        "FROM events ORDER BY id"
    )
    order: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        key = kafka_key(
            row["type"], row["charge_point_id"], row["evse_id"], row["connector_id"],
            json.loads(row["payload"]),
        ).decode()  # fmt: skip
        order[(str(TOPIC_OF_TYPE[row["type"]]), key)].append(str(row["event_id"]))
    return order


def delivered_order(received: list[Received]) -> dict[tuple[str, str], list[str]]:
    order: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in sorted(received, key=lambda r: (r.topic, r.partition, r.offset)):
        if "source_event_id" not in record.envelope["payload"]:  # copies of session samples
            order[(record.topic, record.key)].append(record.envelope["event_id"])
    return order


async def test_full_sessions_of_both_versions_reach_their_topics(
    start_csms: StartCsms, kafka: TansuProcess, topics: None
) -> None:
    csms = await start_csms(kafka_bootstrap_servers=kafka.bootstrap)
    await csms.add_token("TAG-16")
    await csms.add_token("TAG-201")
    async with raw_charger(csms.ocpp_url, "CP-16", "ocpp1.6") as c16:
        tx16 = await session_v16(c16, "TAG-16")
    async with raw_charger(csms.ocpp_url, "CP-201", "ocpp2.0.1") as c201:
        await session_v201(c201, "TAG-201", "TX-201")
    await wait_published(csms.pool)
    events = await csms.pool.fetchval("SELECT count(*) FROM events")
    # 2.0.1 session events carry samples: each is also copied to meter-values.
    received = await read_topics(kafka.bootstrap, events + 3)
    assert len(received) == events + 3  # nothing re-sent on a healthy broker

    for record in received:
        assert record.key.split("/")[0] == record.envelope["charge_point_id"]
        schemas.validate(record.envelope)
    assert delivered_order(received) == await expected_order(csms.pool)

    def types(topic: str, charger: str) -> list[str]:
        return [
            r.envelope["type"]
            for r in sorted(received, key=lambda r: r.offset)
            if r.topic == topic and r.key.split("/")[0] == charger
        ]

    # billing's CDR follows each session's end on the same topic and key
    assert types("charging-sessions", "CP-16") == [
        "session_started", "session_ended", "cdr_created"]  # fmt: skip
    assert types("charging-sessions", "CP-201") == [
        "session_started", "session_updated", "session_ended", "cdr_created"]  # fmt: skip
    assert types("station-status", "CP-16") == (
        ["charger_connected"] + ["connector_status_changed"] * 4 + ["charger_disconnected"]
    )
    assert types("charger-events", "CP-201") == ["charger_booted", "authorization_requested"]
    assert types("meter-values", "CP-16") == ["meter_sampled"]
    assert types("meter-values", "CP-201") == ["meter_sampled"] * 3

    ended = {r.key: r.envelope for r in received if r.envelope["type"] == "session_ended"}
    s16 = ended["CP-16"]["payload"]["session"]
    assert (s16["transaction_id"], s16["status"], s16["id_token"]) == (tx16, "ended", "TAG-16")
    assert (s16["meter_start_wh"], s16["meter_stop_wh"], s16["energy_kwh"]) == (1000, 8500, 7.5)
    assert s16["duration_s"] == 1800 and s16["stop_reason"] == "Local"
    assert s16["started_at"].startswith("2026-03-01T08:00:20")
    assert ended["CP-16"]["occurred_at"].startswith("2026-03-01T08:30:20")
    s201 = ended["CP-201"]["payload"]["session"]
    assert (s201["transaction_id"], s201["energy_kwh"], s201["duration_s"]) == (
        "TX-201",
        12.0,
        3600,
    )
    assert s201["stop_reason"] == "Local" and s201["id_token"] == "TAG-201"
    updated = next(r.envelope for r in received if r.envelope["type"] == "session_updated")
    assert updated["payload"]["session"]["status"] == "active"
    assert updated["payload"]["session"]["energy_kwh"] == 6.0  # 6500 - 500 Wh, so far
    assert csms.app.outbox is not None and csms.app.outbox.relay is not None
    stats = csms.app.outbox.relay.stats
    assert stats.published_events == events and stats.published_messages == events + 3
    assert stats.compression == "gzip"  # Tansu takes gzip; it refuses idempotence
    assert (await csms.app.outbox.lag()) == store.Lag(0, None)


async def test_rows_published_but_not_marked_are_sent_again(
    start_csms: StartCsms, kafka: TansuProcess, topics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between publish and mark (here: the mark fails) re-sends; dedup makes it once."""
    real_mark = store.mark_published
    failures = {"left": 2}

    async def flaky_mark(conn: Any, ids: Any) -> None:
        if failures["left"] and ids:
            failures["left"] -= 1
            raise ConnectionError("database went away after the broker acknowledged")
        await real_mark(conn, ids)

    monkeypatch.setattr(store, "mark_published", flaky_mark)
    monkeypatch.setattr(relay_module, "MAX_BACKOFF_S", 0.2)
    csms = await start_csms(kafka_bootstrap_servers=kafka.bootstrap)
    async with raw_charger(csms.ocpp_url, "CP-RESEND", "ocpp1.6") as charger:
        from tests.csms.outbox.frames import call, status

        for i in range(20):
            await call(charger, *status(False, 1, "Available" if i % 2 else "Unavailable", i))
    await wait_published(csms.pool)
    events = await csms.pool.fetchval("SELECT count(*) FROM events")
    received = await read_topics(kafka.bootstrap, events + 1, within=5)
    assert len(received) > events  # the unmarked rows went out twice
    unique = dedupe(received)
    assert len(unique) == events
    assert delivered_order(unique) == await expected_order(csms.pool)
    assert failures["left"] == 0


def test_kafka_init_is_idempotent(kafka: TansuProcess, capsys: pytest.CaptureFixture[str]) -> None:
    from csms.cli import main

    args = ["kafka-init", "--kafka-bootstrap-servers", kafka.bootstrap, "--partitions", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "station-status: created (partitions=2, replication_factor=1" in first
    assert "cleanup.policy=compact,delete" in first and "retention.ms=86400000" in first
    assert "charging-sessions: created" in first and "retention.ms=34560000000" in first
    assert main(args) == 0
    second = capsys.readouterr().out.splitlines()
    assert second == [f"{t}: exists (left unchanged)" for t in (
        "station-status", "charging-sessions", "meter-values", "charger-events",
        "load-management", "charger-alerts")]  # fmt: skip

    async def configs() -> dict[str, str]:
        from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
        from aiokafka.admin.config_resource import (  # type: ignore[import-untyped]
            ConfigResource,
            ConfigResourceType,
        )

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "charging-sessions")]
            )
            [resource] = response.resources
            return {entry[0]: entry[1] for entry in resource[4]}
        finally:
            await admin.close()

    assert asyncio.run(configs())["retention.ms"] == "34560000000"


def test_consume_prints_a_live_availability_table(
    kafka: TansuProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    from csms.cli import main
    from csms.outbox.envelope import OutboxRow, messages_for
    from tests.csms.outbox.frames import BASE

    def row(i: int, kind: str, charger: str, **payload: Any) -> OutboxRow:
        import uuid

        evse = (payload.get("evse_id"), payload.get("connector_id"))
        return OutboxRow(i, uuid.uuid4(), kind, charger, evse[0], evse[1], BASE, BASE, payload)

    rows = [
        row(1, "charger_connected", "CP-A", protocol="ocpp1.6"),
        row(2, "connector_status_changed", "CP-A", evse_id=1, connector_id=1, status="Occupied"),
        row(3, "connector_status_changed", "CP-A", evse_id=2, connector_id=2, status="Available"),
        row(4, "charger_connected", "CP-B", protocol="ocpp2.0.1"),
        row(5, "charger_disconnected", "CP-B"),
    ]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for r in rows + rows[:2]:  # a re-send: the table must not double-count
                [message] = messages_for(r)
                await producer.send_and_wait("station-status", message.value, key=message.key)
        finally:
            await producer.stop()

    asyncio.run(produce())
    args = ["consume", "--topic", "station-status", "--seconds", "3"]
    assert main([*args, "--kafka-bootstrap-servers", kafka.bootstrap]) == 0
    tables = capsys.readouterr().out.strip().split("\n\n")
    last = tables[-1].splitlines()
    assert last[0].split()[:2] == ["CHARGER", "ONLINE"]
    assert last[1].split()[:6] == ["CP-A", "yes", "1/1:", "Occupied", "2/2:", "Available"]
    assert last[2].split()[:3] == ["CP-B", "no", "-"]
