"""Queues and their Access panel in a real Chromium: an admin grants a member one queue with
HTMX (no page load, no CSP violation), and the member then works exactly that queue.

Screenshots land in test-artifacts/ (gitignored) for a human look.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents import services

pytestmark = pytest.mark.browser

MARK_DOCUMENT = "() => { window.__agentopsSameDocument = true; }"
SAME_DOCUMENT = "() => window.__agentopsSameDocument === true"


def test_admin_grants_a_queue_and_the_member_sees_only_it(
    page, personas, make_ticket, login, screenshot, browser_log
):
    tenant = personas.tenant
    network = services.queue_create(
        tenant=tenant, actor=personas.admin, name="Network", categories=["network"]
    )
    services.queue_create(tenant=tenant, actor=personas.admin, name="Workplace")
    vpn = make_ticket(tenant, personas.requester2, title="VPN drops every hour")
    services.ticket_set_queue(ticket=vpn, actor=None, queue=network)
    make_ticket(tenant, personas.requester2, title="Monitor flickers")

    login(personas.admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queues").click()
    page.wait_for_url(re.compile(r"/queues/$"))
    expect(page.locator("table.queues")).to_contain_text("Network")
    page.get_by_role("link", name="Network", exact=True).click()
    page.wait_for_url(re.compile(r"/queues/network/$"))

    panel = page.locator("#access-panel")
    page.evaluate(MARK_DOCUMENT)
    panel.get_by_label("Member").select_option(label="robin (requester)")
    panel.get_by_label("Access").select_option("work")
    panel.get_by_role("button", name="Grant").click()
    expect(page.locator("#access-panel table.access-holders")).to_contain_text("robin")
    expect(page.locator("#access-panel table.access-holders")).to_contain_text("work")
    assert page.evaluate(SAME_DOCUMENT), "the grant caused a full page load"
    screenshot("queue-access.png")
    assert browser_log.csp_violations() == []
    assert browser_log.errors() == []

    # The member now sees the queue's ticket, and only it, and may work it.
    page.context.clear_cookies()
    login(personas.requester)
    rows = page.locator("#results table.tickets tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("VPN drops every hour")
    rows.first.get_by_role("link", name=vpn.number).click()
    page.wait_for_url(re.compile(rf"/tickets/{vpn.number}/$"))
    expect(page.locator("#sidebar")).to_contain_text("Network")
    expect(page.get_by_role("button", name="Update status")).to_be_visible()
