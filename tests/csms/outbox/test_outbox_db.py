"""The outbox without a broker: relay off, lag, pruning, session snapshots."""

from __future__ import annotations

import dataclasses
import json

import pytest

from csms.outbox import store
from csms.outbox.service import OutboxService
from tests.conftest import StartCsms
from tests.csms.outbox.frames import session_v16
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
    assert started["status"] == "active" and started["meter_stop_wh"] is None
    assert await csms.pool.fetchval("SELECT count(*) FROM events WHERE context IS NOT NULL") == 2


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
