"""Requester notifications in a real Chromium, desktop and 390 px: the requester finds
"Notification settings" in the user menu, chooses the console only, and an update on their
ticket rings the bell in plain words."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from incidents import services
from incidents.models import Status
from incidents.portal import notify
from incidents.portal.models import EmailChoice

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1360, 390])
def test_requester_sets_console_only_and_the_bell_rings(
    page, personas, make_ticket, login, browser_log, screenshot, width
):
    ticket = make_ticket(personas.tenant, personas.requester, title="Laptop fan is loud")
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)
    if width < 1200:
        page.get_by_role("button", name="Menu").click()
    page.locator(".usermenu summary").click()
    page.get_by_role("link", name="Notification settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notification settings")
    page.get_by_label("Only in the console (the bell), no e-mail").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved.")
    assert notify.preference_for(personas.tenant, personas.requester) == EmailChoice.OFF
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(f"notification-settings-{width}.png")

    services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.TRIAGED)
    page.goto("/notifications/")
    expect(page.locator("main")).to_contain_text(f"{ticket.number} is now: Received")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications: 1 unread")
    assert browser_log.csp_violations() == [] and browser_log.errors() == []
