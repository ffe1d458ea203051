"""The usage page in a real Chromium: the quota meters and four bar charts render with no CSP
violation or console error, and at 390 px wide nothing overflows the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agentops import quotas

pytestmark = pytest.mark.browser


def test_admin_reads_usage_with_charts_on_a_phone(page, personas, login, browser_log, screenshot):
    tenant = personas.tenant
    for i in range(3):
        quotas.meter(
            tenant=tenant,
            metric="runs",
            quantity=1,
            key=f"run:{i}",
            blueprint="service_desk",
            model="offline",
        )
        quotas.meter(
            tenant=tenant,
            metric="tokens",
            quantity=400 * (i + 1),
            key=f"step:{i}",
            blueprint="service_desk",
            model="offline",
        )
    login(personas.admin)
    page.locator(".usermenu summary").click()  # in the user menu, beside Administration
    page.get_by_role("link", name="Usage and limits").click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.locator("svg.bar-chart")).to_have_count(4)
    expect(page.get_by_role("img", name="Model tokens per model")).to_be_visible()
    runs_row = page.locator("tr", has_text="Agent runs this month")
    expect(runs_row).to_contain_text("3")
    expect(runs_row).to_contain_text("unlimited")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("svg.bar-chart").first).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px screen"
    chart_width = page.locator("svg.bar-chart").first.bounding_box()["width"]
    assert 200 < chart_width <= 390
    screenshot("usage-390.png")
    assert browser_log.csp_violations() == [] and browser_log.errors() == []
