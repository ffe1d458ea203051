"""Repair 2: the console at 390 px wide in a real Chromium.

The top bar collapses behind a Menu button (navigation, workspace, user menu and Sign out all
reachable), and no page scrolls sideways: tables become stacked rows whose cells are named by
their column.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS = "() => document.documentElement.scrollWidth <= window.innerWidth"


def test_top_bar_collapses_and_sign_out_is_reachable(page, personas, login, browser_log):
    page.set_viewport_size(PHONE)
    login(personas.admin)
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(nav).to_be_hidden()
    assert page.evaluate(NO_SIDEWAYS)

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Tickets")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()
    page.locator(".usermenu summary").click()
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    box = sign_out.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate(NO_SIDEWAYS)

    menu.click()
    expect(nav).to_be_hidden()
    assert browser_log.csp_violations() == []


def test_desktop_keeps_the_full_top_bar(page, personas, login):
    login(personas.agent)
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


@pytest.mark.parametrize(
    "path", ["/tickets/", "/queues/", "/knowledge/", "/audit/", "/sandbox/", "/approvals/"]
)
def test_pages_do_not_scroll_sideways(page, personas, make_ticket, login, path):
    for n in range(3):
        make_ticket(
            personas.tenant,
            personas.requester,
            title=f"Outlook keeps asking for a password on the docking station {n}",
            requester_email="a.very.long.address.for.a.person@subsidiary.acme.example",
        )
    page.set_viewport_size(PHONE)
    login(personas.admin)
    page.goto(path)
    expect(page.locator("h1").first).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS), f"{path} scrolls sideways at 390 px"


def test_ticket_rows_become_stacked_and_labelled(page, personas, make_ticket, login):
    ticket = make_ticket(personas.tenant, personas.requester, title="Printer jams")
    page.set_viewport_size(PHONE)
    login(personas.agent)
    row = page.locator("table.tickets tbody tr").first
    expect(row).to_contain_text(ticket.number)
    expect(page.locator("table.tickets thead")).to_be_hidden()
    status = row.locator("td[data-label=Status]")
    expect(status).to_contain_text("New")
    # Stacked: the number cell sits above the title cell, both as wide as the row.
    number_box = row.locator("td[data-label=Number]").bounding_box()
    title_box = row.locator("td[data-label=Title]").bounding_box()
    assert number_box and title_box and title_box["y"] >= number_box["y"] + number_box["height"] - 1
    assert title_box["width"] > 300
    # Still stacked and labelled after an HTMX search swaps the rows.
    page.get_by_label("Search").press_sequentially("printer", delay=20)
    expect(page).to_have_url(re.compile(r"q=printer"))
    expect(
        page.locator("table.tickets tbody tr").first.locator("td[data-label=Number]")
    ).to_contain_text(ticket.number)
    assert page.evaluate(NO_SIDEWAYS)


def test_ticket_page_times_and_addresses_read_whole(page, personas, make_ticket, login):
    """No "0 minutes ago"; the SLA and an e-mail address are not broken mid-word at 390 px."""
    ticket = make_ticket(
        personas.tenant,
        None,
        title="Docking station",
        requester_email="robin.requester@acme.example",
    )
    page.set_viewport_size(PHONE)
    login(personas.agent)
    page.goto(f"/tickets/{ticket.number}/")
    text = page.locator("main").inner_text()
    assert "0 minutes ago" not in text and "now ago" not in text
    expect(page.locator(".ticket-head .meta")).to_contain_text("opened just now")
    email = page.locator(".facts dd", has_text="robin.requester@acme.example")
    sla = page.locator(".facts .sla")
    expect(sla).to_contain_text("due in")
    for cell in (email, sla):
        lines = cell.evaluate(
            "el => el.getClientRects().length && Math.round(el.getBoundingClientRect().height"
            " / parseFloat(getComputedStyle(el).lineHeight))"
        )
        assert lines == 1, f"{cell} wraps onto {lines} lines"


def test_no_template_comment_leaks_and_the_desktop_bar_fits(page, personas, login):
    login(personas.admin)
    assert "{#" not in page.locator("body").inner_text()
    nav = page.get_by_role("navigation", name="Main")
    heights = nav.locator("a").evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert max(heights) < 40, "a navigation link wraps onto two lines"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
