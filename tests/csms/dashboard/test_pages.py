"""The dashboard in headless Chromium against a running CSMS with simulated chargers."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from charge_point_sim import Fleet
from tests.csms.dashboard.conftest import LIVE_WITHIN_MS, Dashboard
from tests.waiting import eventually

V16, V201 = "DASH-0000", "DASH-0001"


async def add_offline_chargers(dashboard: Dashboard, *ids: str) -> None:
    await dashboard.csms.pool.executemany(
        "INSERT INTO chargers (charge_point_id, protocol, vendor) VALUES ($1, 'ocpp1.6', 'Acme')",
        [(i,) for i in ids],
    )


@pytest.mark.parametrize("live", ["stream", "poll"])
async def test_overview_counts_and_a_status_change_without_reload(
    dashboard: Dashboard, fleet: Fleet, live: str
) -> None:
    await add_offline_chargers(dashboard, "OLD-1", "OLD-2", "OLD-3")
    page = await dashboard.login(dashboard.operator_key, live=live)

    await expect(page.get_by_test_id("count-chargers")).to_have_text("5")
    await expect(page.get_by_test_id("count-connected")).to_have_text("2")
    await expect(page.get_by_test_id("count-disconnected")).to_have_text("3")
    await expect(page.get_by_test_id("count-Available")).to_have_text("4")
    await expect(page.get_by_test_id("count-Faulted")).to_have_text("0")
    await expect(page.locator("tr[data-charger]")).to_have_count(5)
    badge = page.get_by_test_id(f"connector-{V16}-2-2")
    await expect(badge).to_have_text("Available")
    if live == "poll":
        await dashboard.screenshot(page, "overview")

    # A marker in the page's memory survives only if the page is never reloaded.
    await page.evaluate("window.__notReloaded = true")
    await fleet.charger(V16).fault(2)
    await expect(badge).to_have_text("Faulted", timeout=LIVE_WITHIN_MS)
    await expect(page.get_by_test_id("count-Faulted")).to_have_text("1", timeout=LIVE_WITHIN_MS)
    assert await page.evaluate("window.__notReloaded === true")

    # Search and filters are applied by the server, so the counts at the top stay the fleet's.
    await page.get_by_test_id("filter-q").fill("OLD-")
    await expect(page.locator("tr[data-charger]")).to_have_count(3)
    await page.get_by_test_id("filter-q").fill("")
    await page.get_by_test_id("filter-connector_status").select_option("Faulted")
    await expect(page.locator("tr[data-charger]")).to_have_count(1)
    await expect(page.locator(f'tr[data-charger="{V16}"]')).to_be_visible()
    await expect(page.get_by_test_id("count-chargers")).to_have_text("5")


@pytest.mark.parametrize("charger", [V16, V201])
async def test_remote_start_from_the_charger_page_creates_a_real_session(
    dashboard: Dashboard, fleet: Fleet, charger: str
) -> None:
    page = await dashboard.login(dashboard.operator_key, f"#/chargers/{charger}")
    await expect(page.get_by_test_id("connector-status-1-1")).to_have_text("Available")

    await page.get_by_test_id("cmd-start-1-1").click()
    await page.fill("#confirm-body input[name=id_token]", "DRIVER-1")
    await page.get_by_test_id("confirm-ok").click()
    answer = page.get_by_test_id("command-answer")
    await expect(answer).to_contain_text(f"{charger} answered")
    await expect(answer).to_contain_text("Accepted")
    await page.click("#confirm-cancel")  # "Close"

    session = await eventually(
        lambda: dashboard.csms.pool.fetchrow(
            "SELECT * FROM sessions WHERE charge_point_id = $1 AND status = 'active'", charger
        ),
        within=10,
    )
    assert (session["id_token"], session["evse_id"]) == ("DRIVER-1", 1)
    audit = await dashboard.csms.pool.fetchrow(
        "SELECT actor, command, outcome FROM command_audit WHERE charge_point_id = $1", charger
    )
    assert tuple(audit) == ("ops-team", "remote_start", "answered")

    # The page picks the session up by itself: its card, a chart, the command in the history.
    await expect(page.get_by_test_id(f"session-chart-{session['id']}")).to_be_visible(
        timeout=LIVE_WITHIN_MS
    )
    await expect(page.get_by_test_id("connector-status-1-1")).to_have_text(
        "Occupied", timeout=LIVE_WITHIN_MS
    )
    await expect(page.get_by_test_id("command-table")).to_contain_text("remote_start")
    await eventually(
        lambda: dashboard.csms.pool.fetchval(
            "SELECT count(*) >= 2 FROM meter_samples WHERE session_id = $1 "
            "AND measurand = 'Energy.Active.Import.Register'",
            session["id"],
        ),
        within=10,
    )
    chart = f"[data-testid=session-chart-{session['id']}]"
    await expect(page.locator(f"{chart} canvas")).to_be_visible()
    await page.wait_for_function(
        "chart => Number(document.querySelector(chart).dataset.points) >= 2",
        arg=chart,
        timeout=LIVE_WITHIN_MS,
    )
    if charger == V16:
        await dashboard.screenshot(page, "charger")

    # Stop it from the page too: the session ends for real.
    await page.get_by_test_id(f"cmd-stop-{session['id']}").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("command-answer")).to_contain_text("Accepted")
    await eventually(
        lambda: dashboard.csms.pool.fetchval(
            "SELECT status = 'ended' FROM sessions WHERE id = $1", session["id"]
        ),
        within=10,
    )


async def test_a_read_only_login_has_no_command_buttons(dashboard: Dashboard, fleet: Fleet) -> None:
    page = await dashboard.login(dashboard.reader_key, f"#/chargers/{V16}")
    await expect(page.get_by_test_id("connector-status-1-1")).to_have_text("Available")
    await expect(page.locator("#who")).to_have_text("wallboard · read-only")
    await expect(page.get_by_test_id("event-table")).to_be_visible()
    assert await page.locator("[data-testid^=cmd-]").count() == 0
    assert await page.get_by_role("button", name="Start…").count() == 0
    await dashboard.screenshot(page, "charger-read-only")


async def test_an_unknown_key_is_refused_at_login(dashboard: Dashboard) -> None:
    page = await dashboard.browser.new_page()
    await page.goto(dashboard.url)
    await dashboard.screenshot(page, "login")
    await page.fill("#api-key", "csms_not-a-key")
    await page.click("#login-form button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    assert await page.evaluate("sessionStorage.getItem('csms.apiKey')") is None
