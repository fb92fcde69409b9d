"""Sessions pages over a busy simulated fleet; also the screenshots of a fleet at work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from charge_point_sim import Fleet, FleetConfig
from tests.csms.dashboard.conftest import LIVE_WITHIN_MS, Dashboard
from tests.waiting import eventually


@pytest.fixture
async def busy_fleet(dashboard: Dashboard) -> AsyncIterator[Fleet]:
    """Six chargers of both versions with EVs arriving often; 1 real second = 10 minutes."""
    for tag in ("DRIVER-1", "DRIVER-2", "FLEET-7"):
        await dashboard.csms.add_token(tag)
    fleet = Fleet(
        FleetConfig(
            url=dashboard.csms.ocpp_url, chargers=6, v201_share=0.5, connectors=2, speed=600.0,
            arrival_rate=3.0, dwell_mean_s=3600, meter_interval=300, seed=11, id_prefix="CP-",
            id_tags=["DRIVER-1", "DRIVER-2", "FLEET-7"],
        )
    )  # fmt: skip
    await fleet.start()
    assert await fleet.wait_online()
    yield fleet
    await fleet.stop()


async def test_sessions_search_and_detail_with_its_energy_curve(
    dashboard: Dashboard, busy_fleet: Fleet
) -> None:
    pool = dashboard.csms.pool
    ended = await eventually(
        lambda: pool.fetchrow(
            """
            SELECT s.* FROM sessions s WHERE status = 'ended' AND energy_wh > 0 AND (
                SELECT count(*) FROM meter_samples m WHERE m.session_id = s.id
                AND m.measurand = 'Energy.Active.Import.Register') >= 2
            ORDER BY id LIMIT 1
            """
        ),
        within=30,
    )
    page = await dashboard.login(dashboard.operator_key)
    await expect(page.get_by_test_id("count-active-sessions")).not_to_have_text("0")
    await dashboard.screenshot(page, "overview-fleet")

    await page.evaluate("location.hash = '#/sessions'")
    await expect(page.get_by_test_id("session-table")).to_be_visible()
    charger = ended["charge_point_id"]
    await page.get_by_test_id("sessions-charge_point_id").fill(charger)
    await page.get_by_test_id("sessions-status").select_option("ended")
    await page.click("#session-filters button[type=submit]")
    rows = page.locator("[data-testid=session-table] tbody tr")
    await expect(rows.first).to_contain_text(charger)
    expected = await pool.fetchval(
        "SELECT count(*) FROM sessions WHERE charge_point_id = $1 AND status = 'ended'", charger
    )
    assert await rows.count() >= 1
    for text in await rows.all_inner_texts():
        assert charger in text and "ended" in text
    assert await rows.count() <= expected  # more may end while the page loads, none other
    await dashboard.screenshot(page, "sessions")

    await page.get_by_test_id("sessions-charge_point_id").fill("")
    await page.get_by_test_id("sessions-id_token").fill("NOBODY")
    await page.click("#session-filters button[type=submit]")
    await expect(page.locator("#session-list")).to_contain_text("No session matches")

    await page.evaluate(f"location.hash = '#/sessions/{ended['id']}'")
    await expect(page.locator("[data-field=Charger]")).to_have_text(charger)
    energy = f"{ended['energy_wh'] / 1000:.2f} kWh"
    await expect(page.locator("[data-field=Energy]")).to_have_text(energy)
    await page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=session-curve]').dataset.points) >= 2"
    )
    await expect(page.locator("[data-testid=session-curve] canvas")).to_be_visible()
    await dashboard.screenshot(page, "session")

    active = await eventually(
        lambda: pool.fetchrow(
            """
            SELECT s.* FROM sessions s WHERE status = 'active' AND (
                SELECT count(*) FROM meter_samples m WHERE m.session_id = s.id
                AND m.measurand = 'Energy.Active.Import.Register') >= 3
            ORDER BY id DESC LIMIT 1
            """
        ),
        within=15,
    )
    await page.evaluate(f"location.hash = '#/chargers/{active['charge_point_id']}'")
    chart = f"[data-testid=session-chart-{active['id']}]"
    await page.wait_for_function(
        "chart => Number(document.querySelector(chart)?.dataset.points) >= 3",
        arg=chart,
        timeout=LIVE_WITHIN_MS,
    )
    await dashboard.screenshot(page, "charger-live")
