"""A running CSMS, its dashboard in headless Chromium (Debian's package, driven by Playwright).

Each test gets a fresh CSMS (real Postgres) and a fresh browser profile. The
browser is the system's ``/usr/bin/chromium`` (``.ci/run`` installs it):
Playwright's own browser download is never used. Screenshots go to
``$CSMS_DASHBOARD_ARTIFACTS`` (default: ``<pytest basetemp>/dashboard-artifacts``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from charge_point_sim import Fleet, FleetConfig
from csms.storage import api_keys
from tests.conftest import RunningCsms, StartCsms
from tests.waiting import eventually

CHROMIUM = os.environ.get("CSMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container
    "--disable-gpu",
    "--disable-background-networking",  # nothing but the page under test on the wire
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
# "A few seconds" (the page polls every 2 s), with room for a loaded machine: a page
# that never updates without a reload still fails, and one CI run under load
# average 12 showed a change after more than 5 s.
LIVE_WITHIN_MS = 10_000
# Anything else the page shows may take longer on a loaded 2-core CI machine.
expect.set_options(timeout=15_000)


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("CSMS_DASHBOARD_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.getbasetemp() / "dashboard-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Dashboard:
    csms: RunningCsms
    url: str  # http://127.0.0.1:PORT/ : the dashboard's page
    operator_key: str
    reader_key: str
    browser: BrowserContext
    artifacts: Path

    async def login(self, key: str, route: str = "#/", *, live: str | None = None) -> Page:
        """A new tab, logged in through the login form, showing ``route``.

        ``live="poll"`` hides the CSMS's event stream from the page (its
        endpoint answers 404, as before monitoring existed), so the page polls.
        """
        page = await self.browser.new_page()
        if live == "poll":
            await page.route("**/api/v1/stream", lambda route: route.fulfill(status=404))
        await page.goto(self.url)
        await page.fill("#api-key", key)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#who:not(:empty)")
        if live is not None:
            await page.wait_for_selector(f"#live[data-mode={live}]")
        if route != "#/":
            await page.evaluate("route => { location.hash = route; }", route)
        return page

    async def screenshot(self, page: Page, name: str) -> None:
        await page.screenshot(path=self.artifacts / f"{name}.png", full_page=True)


@pytest.fixture
async def dashboard(
    start_csms: StartCsms, artifacts: Path, tmp_path: Path
) -> AsyncIterator[Dashboard]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs it)")
    csms = await start_csms(response_timeout=5.0)
    port = csms.app.api_url.rsplit(":", 1)[1].split("/")[0]
    _, operator_key = await api_keys.create(csms.pool, "ops-team", "operator")
    _, reader_key = await api_keys.create(csms.pool, "wallboard", "read-only")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",  # fresh per test
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1360, "height": 900},
            args=CHROMIUM_ARGS,
        )
        browser.set_default_timeout(10_000)
        browser.set_default_navigation_timeout(30_000)  # a first load under load took > 10 s
        try:
            yield Dashboard(
                csms, f"http://127.0.0.1:{port}/", operator_key, reader_key, browser, artifacts
            )
        finally:
            await browser.close()


@pytest.fixture
async def fleet(dashboard: Dashboard) -> AsyncIterator[Fleet]:
    """Simulated chargers: DASH-0000 (1.6J) and DASH-0001 (2.0.1), two connectors each."""
    await dashboard.csms.add_token("DRIVER-1")
    fleet = Fleet(
        FleetConfig(
            url=dashboard.csms.ocpp_url, chargers=2, v201_share=0.5, connectors=2, speed=60.0,
            arrival_rate=0.0, meter_interval=30, id_tags=["DRIVER-1"], seed=7,
            id_prefix="DASH-",
        )
    )  # fmt: skip
    await fleet.start()
    assert await fleet.wait_online()
    await eventually(
        lambda: dashboard.csms.pool.fetchval(
            "SELECT count(*) = 4 FROM connectors WHERE evse_id > 0"
        )
    )
    yield fleet
    await fleet.stop()
