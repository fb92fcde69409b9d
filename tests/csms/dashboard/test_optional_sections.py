"""Sections for other services' data: hidden while their endpoints answer 404, working when present.

The sites and alerts endpoints come from the smart charging and monitoring
services; a test that needs one is skipped when this CSMS build lacks it.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from charge_point_sim import Fleet
from tests.csms.dashboard.conftest import LIVE_WITHIN_MS, Dashboard
from tests.waiting import eventually

V16 = "DASH-0000"


async def present(dashboard: Dashboard, path: str) -> bool:
    async with httpx.AsyncClient(
        base_url=f"{dashboard.url}api/v1",
        headers={"Authorization": f"Bearer {dashboard.operator_key}"},
    ) as client:
        return (await client.get(path)).status_code != 404


async def hide(page: Page, *paths: str) -> None:
    """Make the page see these endpoints as missing (as before their service existed)."""
    for path in paths:
        await page.route(f"**/api/v1{path}*", lambda route: route.fulfill(status=404))


async def test_sections_of_missing_services_stay_hidden(dashboard: Dashboard) -> None:
    page = await dashboard.browser.new_page()
    await hide(page, "/sites", "/alerts", "/cdrs")
    await page.goto(dashboard.url)
    await page.fill("#api-key", dashboard.operator_key)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("[data-nav=overview]")).to_be_visible()
    await expect(page.locator("[data-nav=sites]")).to_be_hidden()
    await expect(page.locator("[data-nav=alerts]")).to_be_hidden()
    await expect(page.locator("th", has_text="Alerts")).to_have_count(0)


async def test_alerts_page_acknowledges_and_resolves_a_real_alert(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    if not await present(dashboard, "/alerts"):
        pytest.skip("this CSMS has no monitoring alerts (/api/v1/alerts is 404)")
    await fleet.charger(V16).fault(2)
    alert_id = await eventually(
        lambda: dashboard.csms.pool.fetchval(
            "SELECT id FROM alerts WHERE charge_point_id = $1 AND status = 'open'", V16
        ),
        within=10,
    )
    page = await dashboard.login(dashboard.operator_key)
    await expect(page.locator("[data-nav=alerts]")).to_be_visible()
    await page.click("[data-nav=alerts]")
    row = page.locator(f'tr[data-alert="{alert_id}"]')
    await expect(row).to_contain_text(V16)
    await expect(row).to_contain_text("open")
    await dashboard.screenshot(page, "alerts")

    await row.get_by_role("button", name="Acknowledge…").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("command-answer")).to_contain_text("acknowledged")
    await page.click("#confirm-cancel")
    await expect(row).to_contain_text("acknowledged", timeout=LIVE_WITHIN_MS)

    await row.get_by_role("button", name="Resolve…").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("command-answer")).to_contain_text("resolved")
    status = await dashboard.csms.pool.fetchrow(
        "SELECT status, acknowledged_by, resolved_by FROM alerts WHERE id = $1", alert_id
    )
    assert tuple(status) == ("resolved", "api:ops-team", "api:ops-team")


async def test_site_page_shows_the_load_and_cuts_the_limit(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    if not await present(dashboard, "/sites"):
        pytest.skip("this CSMS has no smart charging (/api/v1/sites is 404)")
    async with httpx.AsyncClient(
        base_url=f"{dashboard.url}api/v1",
        headers={"Authorization": f"Bearer {dashboard.operator_key}"},
    ) as client:
        made = await client.post(
            "/sites", json={"site_id": "DEPOT", "name": "Depot", "phase_limit_a": 63}
        )
        assert made.status_code == 201, made.text
        placed = await client.put(f"/chargers/{V16}/site", json={"site_id": "DEPOT"})
        assert placed.status_code == 200, placed.text

    page = await dashboard.login(dashboard.operator_key, "#/sites")
    await page.click("a[href='#/sites/DEPOT']")
    await expect(page.locator("[data-field='Limit per line']")).to_have_text("63.0 A")
    await page.get_by_test_id("dr-cut").click()
    await page.fill("#confirm-body input[name=limit_a]", "16")
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("command-answer")).to_contain_text("Cut in force")
    await page.click("#confirm-cancel")
    await expect(page.locator("[data-field='Demand response']")).to_contain_text("cut to 16")
    await expect(page.locator("[data-testid=site-load-chart] canvas")).to_be_visible()
    await dashboard.screenshot(page, "site")
