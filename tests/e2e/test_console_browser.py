"""The console in a real headless Chromium against the live server: journeys, HTMX, CSP.

Screenshots of the queue and a ticket land in test-artifacts/ (gitignored) for a human look.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents.models import Ticket

pytestmark = pytest.mark.browser

# Set on window before an HTMX interaction; still there afterwards = no full page load happened.
MARK_DOCUMENT = "() => { window.__agentopsSameDocument = true; }"
SAME_DOCUMENT = "() => window.__agentopsSameDocument === true"


def main_nav(page):
    return page.get_by_role("navigation", name="Main")


def queue_rows(page):
    return page.locator("#results table.tickets tbody tr")


def test_agent_files_a_ticket_and_finds_it_in_the_queue(
    page, personas, make_ticket, login, screenshot
):
    tenant = personas.tenant
    other = make_ticket(tenant, personas.requester, title="Laptop battery is swollen")
    login(personas.agent)

    main_nav(page).get_by_role("link", name="New ticket").click()
    page.wait_for_url(re.compile(r"/tickets/new$"))
    expect(page.get_by_role("heading", name="New ticket", level=1)).to_be_visible()

    # Empty submit: the form swaps in place with the error beside the title, no page load.
    page.evaluate(MARK_DOCUMENT)
    page.get_by_role("button", name="Create ticket").click()
    title_field = page.locator(".field", has=page.locator("#id_title"))
    expect(title_field.locator(".field-error")).to_have_text("This field is required.")
    expect(title_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(page.locator("#ticket-form .form-error")).to_contain_text("Please correct")
    assert page.evaluate(SAME_DOCUMENT), "the invalid form caused a full page load"
    assert page.url.endswith("/tickets/new")
    assert Ticket.objects.for_tenant(tenant).count() == 1

    # Valid submit: HX-Redirect to the new ticket's page.
    title = "Printer on floor 3 jams on every page"
    page.locator("#id_title").fill(title)
    page.locator("#id_description").fill("Started this morning; the paper tray is full.")
    page.get_by_role("button", name="Create ticket").click()
    page.wait_for_url(re.compile(r"/tickets/REQ\d{7}/$"))
    ticket = Ticket.objects.for_tenant(tenant).get(title=title)
    assert ticket.number != other.number
    assert page.url.endswith(f"/tickets/{ticket.number}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator(".crumbs")).to_contain_text(ticket.number)
    expect(page.locator("#messages")).to_contain_text(f"{ticket.number} created.")
    screenshot("ticket-detail.png")

    # The queue lists both; typing in the search box filters via HTMX and pushes the URL.
    main_nav(page).get_by_role("link", name="Tickets").click()
    page.wait_for_url(re.compile(r"/tickets/$"))
    expect(queue_rows(page)).to_have_count(2)
    expect(queue_rows(page).filter(has_text=ticket.number)).to_have_count(1)

    page.evaluate(MARK_DOCUMENT)
    page.get_by_label("Search").press_sequentially("printer", delay=20)
    expect(page).to_have_url(re.compile(r"/tickets/\?(.*&)?q=printer(&|$)"))
    expect(queue_rows(page)).to_have_count(1)
    expect(queue_rows(page).first).to_contain_text(ticket.number)
    expect(page.locator("#results")).not_to_contain_text(other.title)
    expect(page.locator("#results .count")).to_have_text("1 ticket")
    assert page.evaluate(SAME_DOCUMENT), "the search caused a full page load"
    screenshot("queue.png")


def test_back_button_after_a_search_restores_the_whole_queue_page(
    page, personas, make_ticket, login
):
    """htmx re-fetches history entries (historyCacheSize 0) with HX-Request set."""
    make_ticket(personas.tenant, personas.requester, title="Printer jams")
    make_ticket(personas.tenant, personas.requester, title="Laptop battery is swollen")
    login(personas.agent)
    expect(queue_rows(page)).to_have_count(2)

    page.get_by_label("Search").fill("printer")
    expect(page).to_have_url(re.compile(r"q=printer"))
    expect(queue_rows(page)).to_have_count(1)

    page.evaluate(
        "() => { window.__agentopsRestored = false; document.body.addEventListener("
        "'htmx:historyRestore', () => { window.__agentopsRestored = true; }); }"
    )
    page.go_back()
    expect(page).to_have_url(re.compile(r"/tickets/$"))
    page.wait_for_function("() => window.__agentopsRestored === true")
    # The whole page, not only the results partial swapped into <body>.
    expect(page.locator("#queue-filters")).to_be_visible()
    expect(main_nav(page)).to_be_visible()
    expect(queue_rows(page)).to_have_count(2)


def test_pages_load_without_csp_violations_or_console_errors(
    page, personas, make_ticket, login, browser_log
):
    ticket = make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")
    response = page.goto("/login/")
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    login(personas.agent)

    for path in ["/tickets/", "/tickets/new", f"/tickets/{ticket.number}/", "/tickets/?q=vpn"]:
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        # The console's own script and stylesheet loaded and were allowed to run / apply.
        assert page.evaluate("() => typeof window.htmx") == "object", path
        topbar = page.evaluate("() => getComputedStyle(document.querySelector('.topbar')).display")
        assert topbar == "flex", path

    assert browser_log.csp_violations() == []
    # The browser asks for /favicon.ico on its own; the console has none (a 404, not the page's).
    assert browser_log.errors(ignore=r"favicon\.ico") == []


def test_requester_sees_only_their_own_tickets(page, personas, make_ticket, login):
    mine = make_ticket(personas.tenant, personas.requester, title="My monitor flickers")
    theirs = make_ticket(personas.tenant, personas.requester2, title="Rosa needs a new badge")
    login(personas.requester)

    expect(queue_rows(page)).to_have_count(1)
    expect(queue_rows(page).first).to_contain_text(mine.number)
    expect(queue_rows(page).first).to_contain_text(mine.title)
    expect(page.locator("#results")).not_to_contain_text(theirs.title)
    # Searching for the other ticket finds nothing either, and its page does not exist for me.
    page.get_by_label("Search").fill(theirs.number)
    expect(page).to_have_url(re.compile(rf"q={theirs.number}"))
    expect(page.locator("#results .empty-state")).to_be_visible()
    response = page.goto(f"/tickets/{theirs.number}/")
    assert response.status == 404


def test_reply_on_a_ticket_swaps_the_conversation(page, personas, make_ticket, login, screenshot):
    ticket = make_ticket(personas.tenant, personas.requester, title="Outlook keeps asking")
    login(personas.agent)
    page.goto(f"/tickets/{ticket.number}/")
    conversation = page.locator("#conversation")
    expect(conversation).to_contain_text("No replies yet.")
    page.evaluate(MARK_DOCUMENT)

    # An empty reply is refused in place.
    conversation.get_by_role("button", name="Add reply").click()
    expect(conversation.locator(".field-error")).to_have_text("This field is required.")

    reply = "Please try signing out of Office and back in."
    conversation.locator("textarea[name=body]").fill(reply)
    conversation.get_by_role("button", name="Add reply").click()
    expect(conversation.locator("article.comment")).to_have_count(1)
    expect(conversation.locator("article.comment")).to_contain_text(reply)
    expect(conversation).not_to_contain_text("No replies yet.")
    expect(conversation.locator(".field-error")).to_have_count(0)
    expect(conversation.locator("textarea[name=body]")).to_have_value("")
    # The history card listens for the ticketChanged trigger and refreshes itself.
    expect(page.locator("#history")).to_contain_text("alex replied")
    assert page.evaluate(SAME_DOCUMENT), "the reply caused a full page load"
    screenshot("ticket-conversation.png")

    comments = list(ticket.comments.values_list("body", "author__username"))
    assert comments == [(reply, personas.agent.username)]
