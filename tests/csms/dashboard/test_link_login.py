"""The one-click login of ``csms demo``: the key in the URL fragment, gone from the address bar."""

from __future__ import annotations

from tests.csms.dashboard.conftest import Dashboard


async def test_a_key_in_the_url_fragment_logs_in_and_leaves_no_trace(
    dashboard: Dashboard,
) -> None:
    page = await dashboard.browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{dashboard.url}#key={dashboard.operator_key}")
    await page.wait_for_selector("#who:not(:empty)")
    assert "ops-team" in (await page.text_content("#who") or "")
    assert dashboard.operator_key not in page.url  # cleared from the address bar
    assert not any(dashboard.operator_key in url for url in requested)  # never sent in a URL
    # The key stays for this tab: a reload is still logged in.
    await page.reload()
    await page.wait_for_selector("#who:not(:empty)")
    await dashboard.screenshot(page, "link-login")
    # The entry with the key was replaced, not kept: going back leaves the dashboard.
    await page.go_back()
    assert dashboard.operator_key not in page.url
