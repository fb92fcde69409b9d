"""Revenue in analytics against hand-computed prices (known_billing.py), through the API
and the pages: the analytics figures and a session's priced record."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from billing import store
from csms.storage import api_keys
from tests.conftest import StartCsms
from tests.csms.dashboard.conftest import Dashboard
from tests.csms.dashboard.known_billing import price_known_history
from tests.csms.dashboard.known_data import write_known_history

RANGE = {"from": "2026-03-02", "to": "2026-03-03", "tz": "UTC"}
EUR_DAY1 = {"currency": "EUR", "sessions": 2, "net": "5.00", "tax": "0.95", "total": "5.95"}
CHF_DAY2 = {"currency": "CHF", "sessions": 1, "net": "6.30", "tax": "0.51", "total": "6.81"}


@pytest.fixture
async def client(start_csms: StartCsms) -> httpx.AsyncClient:
    """The API of a CSMS holding the known history and its CDRs."""
    csms = await start_csms(billing_sweep_interval=0.0)  # only our CDRs, priced our way
    await write_known_history(csms.pool)
    await price_known_history(csms.pool)
    _, key = await api_keys.create(csms.pool, "analyst", "read-only")
    return httpx.AsyncClient(
        base_url=csms.app.api_url.replace("://localhost", "://127.0.0.1"),
        headers={"Authorization": f"Bearer {key}"},
    )


async def _get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    answer = await client.get(path, params={**RANGE, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_revenue_per_day_and_currency_equals_the_hand_computed_one(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        body = await _get(client, "/analytics/fleet")
        berlin = await _get(client, "/analytics/fleet", tz="Europe/Berlin")
        hourly = await _get(client, "/analytics/fleet", bucket="hour")
        only_b = await _get(client, "/analytics/fleet", charge_point_id="AN-B")
        # The CDRs the endpoint summed are the ones billing stored.
        stored = (await client.get("/cdrs", params={"charge_point_id": "AN-A"})).json()["items"]
    day1, day2 = body["buckets"]
    assert day1["revenue"] == [EUR_DAY1]
    assert day2["revenue"] == [CHF_DAY2]
    assert body["summary"]["revenue"] == [CHF_DAY2, EUR_DAY1]  # two currencies, never summed
    eur_total = sum(float(c["total_cost"]) for c in stored if c["currency"] == "EUR")
    assert f"{eur_total:.2f}" == EUR_DAY1["total"]
    # In Berlin A1 and A2 still end on the 2nd (11:00, 10:30), A3 on the 3rd (02:00).
    assert [b["revenue"] for b in berlin["buckets"]] == [[EUR_DAY1], [CHF_DAY2]]
    by_hour = {b["start"][:13]: b["revenue"] for b in hourly["buckets"] if b["revenue"]}
    a2 = {"currency": "EUR", "sessions": 1, "net": "1.00", "tax": "0.19", "total": "1.19"}
    a1 = {"currency": "EUR", "sessions": 1, "net": "4.00", "tax": "0.76", "total": "4.76"}
    assert by_hour == {"2026-03-02T09": [a2], "2026-03-02T10": [a1], "2026-03-03T01": [CHF_DAY2]}
    assert only_b["summary"]["revenue"] == []


async def test_revenue_per_charger_and_in_csv(client: httpx.AsyncClient) -> None:
    async with client:
        rows = (await _get(client, "/analytics/chargers"))["items"]
        per_bucket = await client.get("/analytics/fleet", params={**RANGE, "format": "csv"})
        per_charger = await client.get("/analytics/chargers", params={**RANGE, "format": "csv"})
    by_charger = {r["charge_point_id"]: r["revenue"] for r in rows}
    assert by_charger == {"AN-A": [CHF_DAY2, EUR_DAY1], "AN-B": []}

    day1, day2 = csv.DictReader(io.StringIO(per_bucket.text))
    assert (day1["revenue_total_EUR"], day1["revenue_tax_EUR"], day1["priced_sessions_EUR"]) == (
        "5.95", "0.95", "2",
    )  # fmt: skip
    assert (day1["revenue_total_CHF"], day2["revenue_total_CHF"]) == ("0", "6.81")
    assert "revenue" not in day1
    a, b = csv.DictReader(io.StringIO(per_charger.text))
    assert (a["charge_point_id"], a["revenue_net_EUR"], a["revenue_net_CHF"]) == (
        "AN-A", "5.00", "6.30",
    )  # fmt: skip
    assert (b["charge_point_id"], b["revenue_total_EUR"], b["revenue_total_CHF"]) == (
        "AN-B", "0", "0",
    )  # fmt: skip


async def test_the_pages_show_the_revenue_and_a_priced_record(dashboard: Dashboard) -> None:
    pool = dashboard.csms.pool
    await write_known_history(pool)
    await price_known_history(pool)
    page = await dashboard.login(dashboard.reader_key, "#/analytics")
    await page.get_by_test_id("analytics-from").fill("2026-03-02")
    await page.get_by_test_id("analytics-to").fill("2026-03-03")
    await page.get_by_test_id("analytics-tz").fill("UTC")
    await page.click("#analytics-form button[type=submit]")
    await expect(page.get_by_test_id("a-revenue-EUR")).to_have_text("5.95")
    await expect(page.get_by_test_id("a-revenue-CHF")).to_have_text("6.81")
    per_charger = page.get_by_test_id("analytics-per-charger")
    await expect(per_charger).to_contain_text("5.95 EUR")
    await dashboard.screenshot(page, "analytics-revenue")

    a1 = await pool.fetchval("SELECT id FROM sessions WHERE transaction_id = 'A1'")
    await page.evaluate(f"location.hash = '#/sessions/{a1}'")
    record = page.get_by_test_id("cdr")
    await expect(record.locator("[data-item=energy]")).to_contain_text("3.00")
    await expect(record.locator("[data-item=energy]")).to_contain_text("10 kWh")
    await expect(record.locator("[data-item=flat_fee]")).to_contain_text("1.00")
    await expect(record.locator("[data-total=net]")).to_contain_text("4.00")
    await expect(record.locator("[data-total=tax]")).to_contain_text("0.76")
    await expect(record.locator("[data-total=total]")).to_have_text("4.76 EUR")
    await expect(record.locator("[data-fact=Energy]")).to_have_text("10 kWh")
    await expect(record.locator("[data-fact=Charging]")).to_contain_text("min")
    await dashboard.screenshot(page, "session-priced")


async def test_revenue_per_site(client: httpx.AsyncClient, start_csms: StartCsms) -> None:
    pool = (await start_csms(billing_sweep_interval=0.0)).pool  # the client's database
    if not await pool.fetchval("SELECT to_regclass('sc_charger_sites') IS NOT NULL"):
        pytest.skip("smart charging (sites) is not installed")
    await pool.execute("INSERT INTO sc_sites (site_id, name) VALUES ('S1', 'Depot')")
    await pool.execute(
        "INSERT INTO sc_charger_sites (charge_point_id, site_id) VALUES ('AN-A', 'S1')"
    )
    async with client:
        sites = (await _get(client, "/analytics/sites"))["items"]
        only_s1 = await _get(client, "/analytics/fleet", site_id="S1")
    # S1 holds AN-A (every CDR); AN-B, in no site, priced nothing.
    assert {row["site_id"]: row["revenue"] for row in sites} == {
        "S1": [CHF_DAY2, EUR_DAY1],
        None: [],
    }
    assert [b["revenue"] for b in only_s1["buckets"]] == [[EUR_DAY1], [CHF_DAY2]]


async def test_an_active_sessions_page_shows_its_cost_so_far(dashboard: Dashboard) -> None:
    """3 kWh so far under the EUR tariff (as default): 0.90 + 1.00 fee = 1.90 net,
    tax 0.361 -> 0.36, total 2.26 EUR."""
    pool = dashboard.csms.pool
    await write_known_history(pool)
    await price_known_history(pool)
    eur = await pool.fetchval("SELECT id FROM tariffs WHERE currency = 'EUR'")
    await store.assign(pool, "default", "", eur)
    now = datetime.now(UTC)
    active = await pool.fetchval(
        """
        INSERT INTO sessions (charge_point_id, protocol, transaction_id, evse_id, connector_id,
            id_token, auth_status, status, started_at, meter_start_wh, meter_start_at)
        VALUES ('AN-B', 'ocpp1.6', 'B1', 1, 1, 'DRIVER-1', 'Accepted', 'active', $1, 0, $1)
        RETURNING id
        """,
        now - timedelta(minutes=30),
    )
    await pool.execute(
        """
        INSERT INTO meter_samples (charge_point_id, session_id, evse_id, connector_id,
            sampled_at, measurand, value, unit, location)
        VALUES ('AN-B', $1, 1, 1, $2, 'Energy.Active.Import.Register', 3000, 'Wh', 'Outlet')
        """,
        active,
        now - timedelta(minutes=10),
    )
    page = await dashboard.login(dashboard.reader_key, f"#/sessions/{active}")
    await expect(page.get_by_test_id("cost-so-far")).to_be_visible()
    record = page.get_by_test_id("cdr")
    await expect(record.locator("[data-fact=Energy]")).to_have_text("3 kWh")
    await expect(record.locator("[data-item=energy]")).to_contain_text("0.90")
    await expect(record.locator("[data-total=tax]")).to_have_text("0.36")
    await expect(record.locator("[data-total=total]")).to_have_text("2.26 EUR")
