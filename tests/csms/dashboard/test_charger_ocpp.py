"""The charger page's OCPP sections: device model (read and edit), certificates, logs."""

from __future__ import annotations

from playwright.async_api import Page, expect

from charge_point_sim import Fleet
from tests.csms.dashboard.conftest import Dashboard

V16, V201 = "DASH-0000", "DASH-0001"


async def confirm(page: Page, answered: str) -> None:
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id("command-answer")).to_contain_text(answered)
    await page.click("#confirm-cancel")  # "Close"


async def test_device_model_certificate_and_log_from_the_charger_page(
    dashboard: Dashboard, fleet: Fleet
) -> None:
    page = await dashboard.login(dashboard.operator_key, f"#/chargers/{V201}")
    await expect(page.locator("#device-model")).to_contain_text("Nothing known yet")

    await page.get_by_test_id("cmd-device-model").click()
    await confirm(page, "Accepted")
    row = page.locator('tr[data-variable="OCPPCommCtrlr.HeartbeatInterval"]')
    await expect(row).to_be_visible()
    await expect(page.get_by_test_id("report-progress")).to_contain_text("items in")

    await page.get_by_test_id("set-OCPPCommCtrlr-HeartbeatInterval").click()
    await page.fill("#confirm-body input[name=value]", "77")
    await confirm(page, "Accepted")
    await expect(row).to_contain_text("77")
    await expect(row).to_contain_text("SetVariables")

    await page.get_by_test_id("cmd-sign-certificate").click()
    await confirm(page, "Accepted")
    await expect(page.get_by_test_id("certificate-table")).to_contain_text("Accepted")

    await page.get_by_test_id("cmd-request-log").click()
    await confirm(page, "Accepted")
    await expect(page.get_by_test_id("log-table")).to_contain_text("Uploaded")
    await dashboard.screenshot(page, "charger-ocpp")


async def test_v16_configuration_and_read_only_view(dashboard: Dashboard, fleet: Fleet) -> None:
    page = await dashboard.login(dashboard.operator_key, f"#/chargers/{V16}")
    await page.get_by_test_id("cmd-device-model").click()
    await confirm(page, "configurationKey")
    await expect(
        page.locator('tr[data-variable="OCPP16Configuration.HeartbeatInterval"]')
    ).to_be_visible()

    reader = await dashboard.login(dashboard.reader_key, f"#/chargers/{V16}")
    await expect(reader.get_by_test_id("device-model-table")).to_be_visible()
    await expect(reader.get_by_test_id("cmd-device-model")).to_have_count(0)
    await expect(reader.locator("#device-model button:has-text('Set…')")).to_have_count(0)
