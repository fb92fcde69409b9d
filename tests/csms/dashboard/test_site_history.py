"""The site page: load over the last 24 h and every profile sent, from the stored events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import expect

from charge_point_sim import Fleet
from csms.storage import event_log
from smart_charging.events import ChargingLimitSet, LoadPlanComputed
from tests.csms.dashboard.conftest import Dashboard


async def test_the_site_page_shows_the_stored_day_of_load_and_profiles(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    async with httpx.AsyncClient(
        base_url=f"{dashboard.url}api/v1",
        headers={"Authorization": f"Bearer {dashboard.operator_key}"},
    ) as client:
        made = await client.post("/sites", json={"site_id": "DEPOT", "phase_limit_a": 40})
        assert made.status_code == 201, made.text
        charger = fleet.chargers[0].cfg.charger_id
        placed = await client.put(f"/chargers/{charger}/site", json={"site_id": "DEPOT"})
        assert placed.status_code == 200, placed.text
    # Plans and a profile stored 20 h and 2 h ago, long before the page is opened
    # (and one from yesterday's window edge that must not show).
    now = datetime.now(UTC)
    async with dashboard.csms.pool.acquire() as conn:
        for hours_ago, allocated, measured in ((30, 5.0, 4.0), (20, 32.0, 30.5), (2, 16.0, 15.0)):
            at = now - timedelta(hours=hours_ago)
            await event_log.append(
                conn,
                LoadPlanComputed(
                    charge_point_id="site:DEPOT", occurred_at=at, site_id="DEPOT",
                    reason="test", limit_a=40.0, power_limit_kw=None,
                    allocated_a=(allocated, allocated, 0.0), measured_a=(measured, 0.0, 0.0),
                    reserved_a=0.0, sessions=1, paused=0, changed=1, duration_ms=1.0,
                ),
            )  # fmt: skip
        await event_log.append(
            conn,
            ChargingLimitSet(
                charge_point_id=charger, occurred_at=now - timedelta(hours=20), site_id="DEPOT",
                evse_id=1, transaction_id="T-OLD", purpose="TxProfile", limit_a=12.5,
                previous_limit_a=32.0, phases=3, status="Accepted", reason="stored-before",
            ),
        )  # fmt: skip

    page = await dashboard.login(dashboard.operator_key, "#/sites/DEPOT")
    chart = page.locator("[data-testid=site-load-chart]")
    await expect(chart.locator("canvas")).to_be_visible()
    # 20 h and 2 h ago (not 30 h: outside the window), and the plan of the placement just now.
    await expect(chart).to_have_attribute("data-points", re.compile("^[23]$"))
    since = datetime.fromisoformat(await chart.get_attribute("data-since") or "")
    assert timedelta(hours=19) < now - since < timedelta(hours=21)
    profiles = page.get_by_test_id("site-profiles")
    await expect(profiles).to_contain_text("stored-before")
    await expect(profiles).to_contain_text("12.5")
    # Placing the charger made the load manager send its fallback profiles: listed too.
    await expect(profiles).to_contain_text("TxDefaultProfile")
    await dashboard.screenshot(page, "site-history")
