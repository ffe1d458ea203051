"""Repair 1: a validation error renders in place, in every HTMX form, with DEBUG on and off.

django-htmx's DEBUG handler used to replace the whole document with any 400 answer (a bare
unstyled form). Each form below is submitted invalid in a real Chromium: the error appears
beside the field, the page (top bar, heading) is still there, no full page load happened.
Other error answers (403, 404, 5xx) are told in words in the messages area.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from approvals import handlers
from approvals import services as approval_services
from incidents import services
from incidents.models import Status

pytestmark = pytest.mark.browser
handlers.register("tests.inline", lambda request: None)

MARK_DOCUMENT = "() => { window.__agentopsSameDocument = true; }"
SAME_DOCUMENT = "() => window.__agentopsSameDocument === true"


def _still_the_page(page):
    assert page.evaluate(SAME_DOCUMENT), "the error replaced the document"
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator("h1")).to_be_visible()


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def test_staff_forms_show_errors_in_place(page, personas, make_ticket, login, debug, browser_log):
    ticket = make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")
    login(personas.agent)

    # New ticket with an empty title.
    page.goto("/tickets/new")
    page.evaluate(MARK_DOCUMENT)
    page.get_by_role("button", name="Create ticket").click()
    title = page.locator(".field", has=page.locator("#id_title"))
    expect(title.locator(".field-error")).to_have_text("This field is required.")
    _still_the_page(page)

    # An empty reply, then a status change that needs resolution notes.
    page.goto(f"/tickets/{ticket.number}/")
    page.evaluate(MARK_DOCUMENT)
    page.get_by_role("button", name="Add reply").click()
    expect(page.locator("#conversation .field-error")).to_contain_text("required")
    _still_the_page(page)
    page.locator("#id_status").select_option("resolved")
    page.get_by_role("button", name="Update status").click()
    expect(page.locator("#sidebar .form-error, #sidebar .field-error").first).to_contain_text(
        "resolution notes"
    )
    _still_the_page(page)
    assert page.locator("#messages .message-error").count() == 0
    assert browser_log.csp_violations() == []


def test_reviewer_forms_show_errors_in_place(page, personas, login, debug, browser_log):
    approval_services.request_approval(
        tenant=personas.tenant,
        handler="tests.inline",
        handler_ref="1",
        subject_type="test",
        subject_id="1",
        subject_repr="Request 1",
        action="grant_admin_access",
        arguments={"user_email": "user1@acme.example"},
        priority="high",
        auto_assign=False,
    )
    login(personas.reviewer)
    page.goto("/approvals/")
    page.evaluate(MARK_DOCUMENT)
    item = page.locator("article.approval-item").first
    item.get_by_role("button", name="Reject").click()
    expect(page.locator("article.approval-item .form-error").first).to_contain_text(
        "Say why you reject it"
    )
    _still_the_page(page)

    past = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page.locator("#away-until").fill(past)
    page.get_by_role("button", name="Mark me away").click()
    expect(page.locator("#availability-errors")).to_contain_text("in the future")
    _still_the_page(page)
    assert browser_log.csp_violations() == []


def test_requester_rating_error_in_place(page, personas, make_ticket, login, debug):
    ticket = make_ticket(personas.tenant, personas.requester)
    services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Reset the profile."
    )
    login(personas.requester)
    page.goto(f"/tickets/{ticket.number}/")
    page.evaluate(MARK_DOCUMENT)
    page.locator("#csat").get_by_role("button", name="Rate").click()
    expect(page.locator("#csat .field-error")).to_be_visible()
    _still_the_page(page)


def test_other_error_answers_are_told_in_words(page, personas, make_ticket, login, debug):
    """A 404 to an HTMX request (the ticket vanished for this user) keeps the page."""
    ticket = make_ticket(personas.tenant, personas.requester)
    login(personas.agent)
    page.goto(f"/tickets/{ticket.number}/")
    page.evaluate(MARK_DOCUMENT)
    # The ticket moves to a number this page no longer finds: the reply answers 404.
    page.evaluate(
        "() => { const f = document.querySelector('#conversation form');"
        " f.setAttribute('hx-post', f.getAttribute('hx-post').replace(/[A-Z]{3}\\d+/, 'REQ9999999'));"
        " htmx.process(f); }"
    )
    page.locator("#conversation textarea").fill("Anyone there?")
    page.get_by_role("button", name="Add reply").click()
    expect(page.locator("#messages .message-error")).to_contain_text("not yours to see")
    _still_the_page(page)
