"""Repair 6: each role sees only what it may use, and error pages are in the house style and in
words (no capability code names), in a real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def nav(page):
    return page.get_by_role("navigation", name="Main")


def test_auditor_sees_no_new_ticket_and_a_worded_403(page, personas, login):
    login(personas.auditor)
    expect(nav(page).get_by_role("link", name="Tickets")).to_be_visible()
    expect(nav(page).get_by_role("link", name="New ticket")).to_have_count(0)
    response = page.goto("/tickets/new")
    assert response.status == 403
    expect(page.locator("header.topbar")).to_be_visible()  # the house layout
    expect(page.get_by_role("heading", level=1)).to_have_text("This is not open to your role")
    expect(page.locator(".error-page")).to_contain_text("As an auditor, you cannot open tickets.")
    assert "ticket.create" not in page.content()


@pytest.mark.parametrize("path", ["/approvals/", "/sandbox/", "/runs/", "/queues/", "/audit/"])
def test_requester_gets_the_same_worded_403_on_staff_pages(page, personas, login, path):
    login(personas.requester)
    expect(nav(page).get_by_role("link", name="My requests")).to_be_visible()
    for hidden in ("Approvals", "Sandbox", "Agent runs", "Queues", "Audit"):
        expect(nav(page).get_by_role("link", name=hidden)).to_have_count(0)
    response = page.goto(path)
    assert response.status == 403
    expect(page.locator(".error-page h1")).to_have_text("This is not open to your role")
    text = page.locator(".error-page").inner_text()
    assert "." in text and "view_all" not in text and "audit.view" not in text


def test_not_found_is_styled_and_worded(page, personas, login):
    login(personas.requester)
    response = page.goto("/tickets/REQ9999999/")
    assert response.status == 404
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator(".error-page h1")).to_have_text("There is nothing here")
    page.get_by_role("link", name="Go to your start page").click()
    expect(page.locator(".error-page")).to_have_count(0)
