"""The analytics page shows monitoring's availability for the range and the selection."""

from __future__ import annotations

import re

from playwright.async_api import expect

from charge_point_sim import Fleet
from tests.csms.dashboard.conftest import Dashboard

PERCENT = re.compile(r"^\d+\.\d$")


async def test_availability_of_the_fleet_and_of_one_charger(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    page = await dashboard.login(dashboard.reader_key, "#/analytics")
    online = page.get_by_test_id("a-online")
    await expect(online).to_have_text(PERCENT)
    # Both chargers have been connected since they became known: (nearly) always online.
    assert float(await online.inner_text()) >= 90.0
    rows = page.locator("[data-testid=analytics-per-charger] tbody tr")
    await expect(rows).to_have_count(2)
    for text in await rows.all_inner_texts():
        online_cell, usable_cell = text.split("\t")[-2:]
        assert PERCENT.match(online_cell) and float(online_cell) >= 90.0, text
        assert PERCENT.match(usable_cell), text

    # One charger selected: its own report (monitoring's per-charger endpoint), with downtime.
    await page.get_by_test_id("analytics-chargers").fill("DASH-0000")
    await page.click("#analytics-form button[type=submit]")
    report = page.get_by_test_id("analytics-downtime")
    await expect(report).to_contain_text("Availability of DASH-0000")
    await expect(report).to_contain_text("No downtime in the range.")
    await expect(rows).to_have_count(1)
    await dashboard.screenshot(page, "analytics-availability")
