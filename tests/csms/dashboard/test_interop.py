"""The charger page says what a charger does not support, and its schedule units."""

from __future__ import annotations

import re

from playwright.async_api import expect

from charge_point_sim import Fleet
from tests.csms.dashboard.conftest import Dashboard
from tests.waiting import eventually

V16, V201 = "DASH-0000", "DASH-0001"


async def test_the_charger_page_shows_what_the_charger_does_not_support(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    # The simulated 2.0.1 station has no TariffCostCtrlr: learned at boot.
    await eventually(
        lambda: dashboard.csms.pool.fetchval(
            "SELECT count(*) FROM charger_unsupported_actions WHERE charge_point_id = $1", V201
        ),
        within=15,
    )
    page = await dashboard.login(dashboard.reader_key, f"#/chargers/{V201}")
    unsupported = page.get_by_test_id("unsupported-actions")
    await expect(unsupported).to_have_text("CostUpdated")
    why = re.compile(r"^CostUpdated: device model says TariffCostCtrlr: UnknownComponent \(")
    await expect(unsupported).to_have_attribute("title", why)
    await expect(page.locator("#charger-head")).to_contain_text("A, W")
    await dashboard.screenshot(page, "charger-unsupported")
    await page.evaluate("route => { location.hash = route; }", f"#/chargers/{V16}")
    await expect(page.locator("#charger-head h1")).to_contain_text(V16)
    await expect(page.get_by_test_id("unsupported-actions")).to_have_count(0)
