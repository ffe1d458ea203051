"""The requester portal in a real Chromium: search first with live answers and citations, a
catalogue form (inline errors, then a ticket), my requests in plain words; at 390 px too."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents.models import Source, Ticket

pytestmark = pytest.mark.browser


@pytest.fixture
def kb(personas, django_capture_on_commit_callbacks):
    from knowledge import services as kb_services

    with django_capture_on_commit_callbacks(execute=True):
        kb_services.ingest_text(
            tenant=personas.tenant,
            kind="guide",
            title="Resetting your password",
            content="# Forgot your password\n\nOpen the self-service page and choose Reset password.",
        )


@pytest.mark.parametrize("width", [1360, 390])
def test_requester_searches_then_asks_from_the_catalogue(
    page, personas, kb, login, browser_log, screenshot, width
):
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)
    expect(page).to_have_url(re.compile(r"/portal/$"))
    search = page.get_by_label("Describe your problem or question")
    expect(search).to_be_visible()
    search.press_sequentially("forgot password", delay=20)
    answers = page.locator("#answers")
    expect(answers).to_contain_text("Answers from our knowledge base")
    expect(answers.get_by_role("link", name="Resetting your password")).to_be_visible()

    page.get_by_role("link", name=re.compile("^New software")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New software")
    page.get_by_role("button", name="Send the request").click()
    expect(page.locator(".field-error").first).to_be_visible()
    page.get_by_label("Which software?").fill("Figma")
    page.get_by_label("What do you need it for?").fill("Design reviews with the agency.")
    page.get_by_role("button", name="Send the request").click()
    page.wait_for_url(re.compile(r"/tickets/REQ\d+/$"))
    ticket = Ticket.objects.for_tenant(personas.tenant).get()
    assert ticket.title == "Install Figma" and ticket.source == Source.PORTAL
    expect(page.locator("#messages")).to_contain_text(f"Your request {ticket.number} is with us.")

    if width < 1200:  # the navigation folds behind the Menu button on narrow screens
        page.get_by_role("button", name="Menu").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Help").click()
    expect(page.locator("#my-requests")).to_contain_text("Install Figma")
    expect(page.locator("#my-requests")).to_contain_text("Received: we will look at it shortly")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(f"portal-{width}.png")
    assert browser_log.csp_violations() == []
