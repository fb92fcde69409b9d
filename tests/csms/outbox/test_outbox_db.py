"""The outbox without a broker: relay off, lag, pruning, session snapshots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from csms.outbox import store
from csms.outbox.envelope import session_summary
from csms.outbox.service import OutboxService
from csms.storage.sessions import SESSION_CONTEXT_FIELDS
from tests.conftest import StartCsms
from tests.csms.outbox.frames import session_v16, session_v201
from tests.ocpp_clients import raw_charger
from tests.waiting import eventually


async def test_without_kafka_events_stay_in_the_outbox_and_the_csms_says_so(
    start_csms: StartCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    csms = await start_csms()
    assert "outbox.relay_off" in capsys.readouterr().err
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "CP-OFF", "ocpp1.6") as charger:
        tx = await session_v16(charger, "TAG")
    assert csms.app.outbox is not None and csms.app.outbox.relay is None
    lag = await csms.app.outbox.lag()
    events = await csms.pool.fetchval("SELECT count(*) FROM events")
    assert lag.unpublished == events >= 10
    assert lag.oldest_age_s is not None and lag.oldest_age_s >= 0
    # the session snapshot was written with the event, in the same statement
    context = json.loads(
        await csms.pool.fetchval("SELECT context FROM events WHERE type = 'session_ended'")
    )
    assert (context["transaction_id"], context["status"]) == (tx, "ended")
    assert (context["meter_start_wh"], context["meter_stop_wh"], context["energy_wh"]) == (
        1000,
        8500,
        7500,
    )
    started = json.loads(
        await csms.pool.fetchval("SELECT context FROM events WHERE type = 'session_started'")
    )
    assert started["status"] == "active" and started.get("meter_stop_wh") is None
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE context IS NOT NULL") == 2


async def test_the_stored_session_context_gives_the_summary_the_whole_row_gives(
    start_csms: StartCsms,
) -> None:
    """``context`` keeps only what the relay's summary reads; the summary is unchanged.

    Each session event's summary from its stored context equals the summary of the
    session row as that event left it: the update's (the 2.0.1 batch path, the row as
    its readings left it) against the row's readings at that point, the end's against
    the final row.
    """
    csms = await start_csms()
    await csms.add_token("TAG")
    async with raw_charger(csms.ocpp_url, "CP-CTX", "ocpp2.0.1") as charger:
        await session_v201(charger, "TAG", "TX-CTX")
    rows = await csms.pool.fetch(
        "SELECT type, occurred_at, context FROM events WHERE context IS NOT NULL ORDER BY id"
    )
    assert [r["type"] for r in rows] == ["session_started", "session_updated", "session_ended"]
    whole = json.loads(
        await csms.pool.fetchval(
            "SELECT to_jsonb(s) FROM sessions s WHERE transaction_id = 'TX-CTX'"
        )
    )
    allowed = {*SESSION_CONTEXT_FIELDS, "start_unknown"}
    for row in rows:
        context = json.loads(row["context"])
        assert set(context) <= allowed, set(context) - allowed
        assert None not in context.values()
    started, updated, ended = (json.loads(r["context"]) for r in rows)
    end_summary = session_summary(ended, rows[2]["occurred_at"])
    assert end_summary == session_summary(whole, rows[2]["occurred_at"])
    assert end_summary is not None and end_summary["energy_wh"] == 12000
    assert end_summary["stop_reason"] == "Local" and end_summary["status"] == "ended"
    # the update as its readings left it: 500 -> 6500 Wh, still active
    as_updated = {**whole, "status": "active", "ended_at": None, "meter_stop_wh": None,
                  "stop_reason": None, "energy_wh": 6000.0}  # fmt: skip
    assert session_summary(updated, rows[1]["occurred_at"]) == session_summary(
        as_updated, rows[1]["occurred_at"]
    )
    assert started["status"] == "active" and started["id_token"] == "TAG"


async def test_pruning_keeps_unpublished_rows_while_a_relay_runs(start_csms: StartCsms) -> None:
    csms = await start_csms()
    async with raw_charger(csms.ocpp_url, "CP-OLD", "ocpp1.6"):
        pass
    async with raw_charger(csms.ocpp_url, "CP-NEW", "ocpp1.6"):
        pass
    pool = csms.pool

    async def both_disconnected() -> bool:
        query = "SELECT count(*) FROM events WHERE type = 'charger_disconnected'"
        return bool(await pool.fetchval(query) == 2)

    await eventually(both_disconnected)
    await pool.execute(
        "UPDATE events SET recorded_at = now() - interval '10 days' "
        "WHERE charge_point_id = 'CP-OLD'"
    )
    old_published = await pool.fetchval(
        """UPDATE events SET published_at = now() WHERE id = (
               SELECT min(id) FROM events WHERE charge_point_id = 'CP-OLD') RETURNING id"""
    )
    settings = dataclasses.replace(csms.app.settings, outbox_retention_hours=24)

    # relay on: only old *published* rows go
    on = OutboxService(pool, settings)
    on.relay = object()  # type: ignore[assignment]  # "a relay runs": never drop unpublished
    assert await on.prune() == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE id = $1", old_published) == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE charge_point_id = 'CP-OLD'") == 1

    # relay off: the outbox is bounded, old unpublished rows go too; recent ones stay
    off = OutboxService(pool, settings)
    assert off.relay is None
    assert await off.prune() == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE charge_point_id = 'CP-OLD'") == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE charge_point_id = 'CP-NEW'") == 2
    assert (await store.lag(pool)).unpublished == 2
