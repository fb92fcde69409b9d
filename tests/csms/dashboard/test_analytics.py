"""Analytics against figures worked out by hand (known_data.py), through the API and the page."""

from __future__ import annotations

import csv
import io

import asyncpg
import httpx
import pytest
from playwright.async_api import expect

from csms.dashboard.rollup import roll_up
from csms.storage import api_keys
from tests.conftest import RunningCsms, StartCsms
from tests.csms.dashboard.conftest import Dashboard
from tests.csms.dashboard.known_data import write_known_history
from tests.waiting import eventually

RANGE = {"from": "2026-03-02", "to": "2026-03-03", "tz": "UTC"}


@pytest.fixture
async def history(start_csms: StartCsms) -> RunningCsms:
    """A CSMS holding the known history."""
    csms = await start_csms()
    await write_known_history(csms.pool)
    return csms


@pytest.fixture
async def client(history: RunningCsms) -> httpx.AsyncClient:
    """The CSMS's API (no browser: these tests read JSON)."""
    csms = history
    _, key = await api_keys.create(csms.pool, "analyst", "read-only")
    return httpx.AsyncClient(
        base_url=csms.app.api_url.replace("://localhost", "://127.0.0.1"),
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_fleet_figures_per_day_equal_the_hand_computed_ones(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        answer = await client.get("/analytics/fleet", params=RANGE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    day1, day2 = body["buckets"]
    assert day1["start"].startswith("2026-03-02T00:00:00") and day1["charging_points"] == 3
    assert (day1["energy_kwh"], day2["energy_kwh"]) == (17.0, 7.0)
    assert (day1["occupied_pct"], day1["charging_pct"]) == (4.86, 2.78)
    assert (day2["occupied_pct"], day2["charging_pct"]) == (1.39, 1.39)
    assert (day1["sessions"], day1["failed_sessions"], day1["failed_rate_pct"]) == (3, 1, 33.33)
    assert (day2["sessions"], day2["failed_rate_pct"]) == (0, None)
    assert (day1["avg_duration_min"], day1["avg_idle_after_full_min"]) == (90.0, 30.0)
    assert (day1["peak_kw"], day2["peak_kw"]) == (10.0, 7.0)

    summary = body["summary"]
    assert (summary["energy_kwh"], summary["sessions"], summary["peak_kw"]) == (24.0, 3, 10.0)
    assert (summary["occupied_pct"], summary["charging_pct"]) == (3.12, 2.08)
    duration = {(b["from"], b["to"]): b["sessions"] for b in body["distributions"]["duration_min"]}
    assert duration == {(0, 15): 0, (15, 30): 0, (30, 60): 1, (60, 120): 0, (120, 240): 2,
                        (240, 480): 0, (480, None): 0}  # fmt: skip
    energy = {(b["from"], b["to"]): b["sessions"] for b in body["distributions"]["energy_kwh"]}
    assert energy == {(0, 5): 1, (5, 10): 0, (10, 20): 2, (20, 40): 0, (40, 60): 0, (60, None): 0}


async def test_rolled_up_sessions_give_the_same_figures_without_their_samples(
    client: httpx.AsyncClient, history: RunningCsms
) -> None:
    async with client:
        before = (await client.get("/analytics/fleet", params=RANGE)).json()
        hourly_before = await client.get("/analytics/fleet", params={**RANGE, "bucket": "hour"})
        async with history.pool.acquire() as conn:
            assert await roll_up(conn) == 3
            assert await roll_up(conn) == 0  # nothing changed since
        # The figures now come from the rollup alone: the raw samples can go.
        await history.pool.execute("DELETE FROM meter_samples")
        after = (await client.get("/analytics/fleet", params=RANGE)).json()
        hourly_after = await client.get("/analytics/fleet", params={**RANGE, "bucket": "hour"})
        assert after == before
        assert hourly_after.json() == hourly_before.json()

        # A session changed after its rollup (a late reading) is read raw again, then re-rolled.
        await history.pool.execute(
            "UPDATE sessions SET meter_stop_wh = 12000, updated_at = now() "
            "WHERE transaction_id = 'A1'"
        )
        changed = (await client.get("/analytics/fleet", params=RANGE)).json()
        assert changed["buckets"][0]["energy_kwh"] == 19.0  # 10 + 2 kWh at the stop, + 7
        async with history.pool.acquire() as conn:
            assert await roll_up(conn) == 1
        assert (await client.get("/analytics/fleet", params=RANGE)).json() == changed


async def test_hourly_buckets_and_one_charger(client: httpx.AsyncClient) -> None:
    async with client:
        hourly = (await client.get("/analytics/fleet", params={**RANGE, "bucket": "hour"})).json()
        only_b = await client.get("/analytics/fleet", params={**RANGE, "charge_point_id": "AN-B"})
    by_hour = {b["start"][:16]: b for b in hourly["buckets"]}
    assert len(by_hour) == 48
    assert by_hour["2026-03-02T08:00"]["energy_kwh"] == 10.0
    assert by_hour["2026-03-02T08:00"]["peak_kw"] == 10.0
    assert by_hour["2026-03-02T09:00"]["energy_kwh"] == 0.0
    # 09:00-10:00: A1 occupied all hour, A2 half of it: 1.5 of 3 point-hours.
    assert by_hour["2026-03-02T09:00"]["occupied_pct"] == 50.0
    assert by_hour["2026-03-03T00:00"]["energy_kwh"] == 7.0
    assert only_b.json()["summary"]["energy_kwh"] == 0.0
    assert only_b.json()["summary"]["charging_points"] == 1


async def test_per_charger_figures_and_csv(client: httpx.AsyncClient) -> None:
    async with client:
        rows = (await client.get("/analytics/chargers", params=RANGE)).json()["items"]
        exported = await client.get("/analytics/fleet", params={**RANGE, "format": "csv"})
    a, b = rows
    assert (a["charge_point_id"], a["charging_points"], a["energy_kwh"]) == ("AN-A", 2, 24.0)
    assert (a["occupied_pct"], a["charging_pct"], a["sessions"]) == (4.69, 3.12, 3)
    assert (b["charge_point_id"], b["energy_kwh"], b["occupied_pct"], b["sessions"]) == (
        "AN-B", 0.0, 0.0, 0,
    )  # fmt: skip
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["energy_kwh"] for r in table] == ["17.0", "7.0"]
    assert table[0]["start"].startswith("2026-03-02T00:00:00")


async def test_a_time_zone_moves_the_day_edges(client: httpx.AsyncClient) -> None:
    # In Berlin (UTC+1 in March) A3 runs 00:00-02:00 on the 3rd: all of its energy that day.
    params = {**RANGE, "tz": "Europe/Berlin"}
    async with client:
        body = (await client.get("/analytics/fleet", params=params)).json()
        bad = await client.get("/analytics/fleet", params={**RANGE, "tz": "Mars/Olympus"})
        backwards = await client.get("/analytics/fleet", params={**RANGE, "to": "2026-03-01"})
    assert [b["energy_kwh"] for b in body["buckets"]] == [10.0, 14.0]
    assert bad.status_code == 422 and "Mars/Olympus" in bad.json()["error"]
    assert backwards.status_code == 422


async def test_the_analytics_page_shows_the_same_figures(dashboard: Dashboard) -> None:
    await write_known_history(dashboard.csms.pool)
    page = await dashboard.login(dashboard.reader_key, "#/analytics")
    await page.get_by_test_id("analytics-from").fill("2026-03-02")
    await page.get_by_test_id("analytics-to").fill("2026-03-03")
    await page.get_by_test_id("analytics-tz").fill("UTC")
    await page.click("#analytics-form button[type=submit]")
    await expect(page.get_by_test_id("a-energy")).to_have_text("24.00")
    await expect(page.get_by_test_id("a-sessions")).to_have_text("3")
    await expect(page.get_by_test_id("a-peak")).to_have_text("10.00")
    await expect(page.get_by_test_id("a-failed")).to_have_text("33.3")
    await expect(page.get_by_test_id("analytics-per-charger")).to_contain_text("AN-A")
    await dashboard.screenshot(page, "analytics")


async def test_per_site_figures_when_smart_charging_is_installed(
    client: httpx.AsyncClient, start_csms: StartCsms
) -> None:
    pool = (await start_csms()).pool  # the same database as the client's CSMS
    if not await pool.fetchval("SELECT to_regclass('sc_charger_sites') IS NOT NULL"):
        async with client:  # a build without smart charging: sites are refused, not made up
            assert (await client.get("/analytics/sites", params=RANGE)).status_code == 404
            by_site = await client.get("/analytics/fleet", params={**RANGE, "site_id": "S1"})
            assert by_site.status_code == 404
        return
    await pool.execute("INSERT INTO sc_sites (site_id, name) VALUES ('S1', 'Depot')")
    await pool.execute(
        "INSERT INTO sc_charger_sites (charge_point_id, site_id) VALUES ('AN-A', 'S1')"
    )
    async with client:
        sites = (await client.get("/analytics/sites", params=RANGE)).json()["items"]
        only_s1 = (await client.get("/analytics/fleet", params={**RANGE, "site_id": "S1"})).json()
    by_site = {row["site_id"]: row for row in sites}
    assert set(by_site) == {"S1", None}  # None: the chargers in no site (AN-B)
    assert (by_site["S1"]["energy_kwh"], by_site["S1"]["peak_kw"]) == (24.0, 10.0)
    assert (by_site["S1"]["charging_points"], by_site["S1"]["occupied_pct"]) == (2, 4.69)
    assert (by_site[None]["charging_points"], by_site[None]["energy_kwh"]) == (1, 0.0)
    assert only_s1["charge_point_ids"] == ["AN-A"]
    assert only_s1["summary"]["energy_kwh"] == 24.0


async def test_the_dashboard_service_rolls_up_ended_sessions_in_the_background(
    database_dsn: str, start_csms: StartCsms
) -> None:
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=1)
    try:
        await write_known_history(pool)
    finally:
        await pool.close()
    csms = await start_csms()  # its dashboard service rolls up at start
    await eventually(lambda: csms.pool.fetchval("SELECT count(*) = 3 FROM analytics_sessions"))
    slots = await csms.pool.fetchval("SELECT sum(energy_wh) FROM analytics_session_slots")
    assert slots == 24000.0
