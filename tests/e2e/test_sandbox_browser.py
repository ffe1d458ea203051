"""Repair 3: the sandbox page in a real Chromium: tabs (recent operations first), search and
pagination, all by HTMX without a page load, and the page stays short."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents.connectors.sandbox.models import Operation
from agents.connectors.sandbox.seed import seed_sandbox

pytestmark = pytest.mark.browser
MARK_DOCUMENT = "() => { window.__agentopsSameDocument = true; }"
SAME_DOCUMENT = "() => window.__agentopsSameDocument === true"


def test_sandbox_tabs_search_and_pages(page, personas, login, browser_log):
    tenant = personas.tenant
    seed_sandbox(
        tenant, [("robin@acme.example", "Robin Requester"), ("rosa@acme.example", "Rosa Requester")]
    )
    for n in range(30):
        Operation.objects.create(
            tenant=tenant,
            idempotency_key=f"op{n}",
            connector="directory",
            operation="unlock_account" if n % 2 else "enable_mfa",
            result={"summary": f"Operation {n:02d} applied."},
        )
    login(personas.agent)
    page.goto("/sandbox/")
    tabs = page.get_by_role("navigation", name="Sandbox sections")
    expect(tabs.locator("a[aria-current=page]")).to_contain_text("Recent operations")
    rows = page.locator("table.sandbox-operations tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("Operation 29 applied.")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height < 3000, f"the sandbox page is {height} px tall"

    page.evaluate(MARK_DOCUMENT)
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#results .pager")).to_contain_text("Page 2 of 2")
    expect(rows).to_have_count(5)

    page.get_by_label("Search").press_sequentially("unlock", delay=20)
    expect(page).to_have_url(re.compile(r"q=unlock"))
    expect(page.locator("#results .count")).to_contain_text("15 operations")

    tabs.get_by_role("link", name=re.compile("^Directory")).click()
    expect(tabs.locator("a[aria-current=page]")).to_contain_text("Directory")
    expect(page.locator("#results .empty-state")).to_contain_text("Nothing here matches")
    page.get_by_label("Search").fill("")
    page.get_by_label("Search").press_sequentially("robin", delay=20)
    expect(page.locator("table.sandbox-users tbody tr")).to_have_count(1)
    expect(page.locator("table.sandbox-users")).to_contain_text("robin@acme.example")
    expect(page).to_have_url(re.compile(r"tab=directory"))
    assert page.evaluate(SAME_DOCUMENT), "a tab, page or search caused a full page load"
    assert browser_log.csp_violations() == []
