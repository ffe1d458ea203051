"""The requester's "did this solve it?" in a real Chromium (issue 13): the agent's cited answer
on the ticket, the card, one click (HTMX, CSRF header from base.html), the ticket resolved or
handed to a person; at 390 px too, with no CSP violation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents import replies, services
from incidents.models import Status, Ticket

pytestmark = pytest.mark.browser


@pytest.fixture
def answered(personas):
    ticket = services.ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="How do I set my out of office reply?",
        start_agent=False,
    )
    services.ticket_transition(ticket=ticket, actor=None, status=Status.ON_HOLD)
    replies.reply_post(
        ticket=ticket,
        kind="answer",
        awaiting=True,
        body="Open File, then Automatic Replies [1].\n\nSources: [1] Out of office <b>guide</b>",
        citations=[{"title": "Out of office guide", "source_id": 1}],
    )
    return ticket


@pytest.mark.parametrize(("width", "solved"), [(1360, True), (390, False)])
def test_the_requester_answers_did_this_solve_it(
    page, personas, answered, login, browser_log, screenshot, width, solved
):
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)
    page.goto(f"/tickets/{answered.number}/")
    card = page.locator(f"#confirm-{answered.number}")
    expect(card.get_by_role("heading", name="Did this solve it?")).to_be_visible()
    # The agent's words are on the ticket, escaped (the markup in them stays text).
    expect(page.get_by_text("Open File, then Automatic Replies [1].")).to_be_visible()
    assert page.locator("b", has_text="guide").count() == 0
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(f"confirm-{width}.png")
    name = "Yes, it is solved" if solved else "No, I still need help"
    card.get_by_role("button", name=name).click()
    expect(page.locator(f"#confirm-{answered.number}")).to_contain_text(
        "glad it is solved" if solved else "a person from the service desk"
    )
    assert re.search(r"/tickets/REQ\d+/$", page.url)  # swapped in place, no navigation
    ticket = Ticket.objects.for_tenant(personas.tenant).get(pk=answered.pk)
    assert ticket.status == (Status.RESOLVED if solved else Status.ESCALATED)
    assert browser_log.csp_violations() == []
    assert browser_log.errors() == []
