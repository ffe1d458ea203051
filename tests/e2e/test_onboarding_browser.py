"""A hiring manager who is not staff in a real Chromium (issue 13): the portal's new-starter
form starts the onboarding checklist, 'My requests' shows its progress in plain words and
nothing internal; another requester sees none of it; at 390 px too, with no CSP violation."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from agentops.models import Role
from agents.connectors.sandbox.models import Device, DirectoryUser
from agents.models import Run
from approvals.models import ApprovalRequest
from approvals.services import decide
from tests.conftest import make_user
from tests.e2e.conftest import sign_in
from tests.incidents.test_onboarding import drive

pytestmark = pytest.mark.browser

STARTER = "kim.lee@acme.test"


@pytest.fixture
def starter(personas, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test reads the database too.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    DirectoryUser.objects.create(tenant=personas.tenant, email=STARTER, display_name="Kim Lee")
    Device.objects.create(
        tenant=personas.tenant, asset_tag="LT-0901", owner_email=STARTER, vpn_profile_version=1
    )


@pytest.mark.parametrize("width", [1360, 390])
def test_a_hiring_manager_follows_the_new_starters_checklist(
    page, browser, live_server, personas, starter, login, browser_log, screenshot, width
):
    assert os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)  # the hiring manager: a requester, not staff
    page.goto("/portal/request/new-starter/")
    page.get_by_label("The new starter's full name").fill("Kim Lee")
    page.get_by_label("First day").fill("2027-01-04")
    page.get_by_label("Job title and team").fill("Analyst, Sales")
    page.get_by_label("Their work e-mail (starts the onboarding checklist)").fill(STARTER)
    page.get_by_label("Authorised software (comma-separated)").fill("Slack")
    page.get_by_label("Groups to join (comma-separated)").fill("vpn-users")
    page.get_by_role("button", name="Send the request").click()
    page.wait_for_url(re.compile(r"/tickets/REQ\d+/$"))

    run = Run.objects.for_tenant(personas.tenant).get(agent_name="onboarding")
    drive(run)  # what the worker does (its tasks may have run it already)
    assert run.status == "waiting_approval"  # the group waits for a reviewer
    page.goto("/portal/")
    checklist = page.locator("#my-requests .onboarding-progress")
    expect(checklist).to_contain_text("Onboarding checklist: 4 of 5 done · In progress")
    expect(checklist.get_by_text("Slack installed")).to_be_visible()
    expect(checklist).to_contain_text("Member of vpn-users: Waiting for approval")
    mine = page.locator("#my-requests").inner_text()
    for internal in ("modify_security_group", "install_software", "LT-0901", "policy"):
        assert internal not in mine
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(f"onboarding-progress-{width}.png")

    # Another requester, in a browser of their own: no request, no checklist.
    other = make_user(f"quinn{width}", personas.tenant, Role.REQUESTER)
    context = browser.new_context(base_url=live_server.url)
    try:
        tab = context.new_page()
        sign_in(tab, other)
        tab.goto("/portal/")
        expect(tab.locator("#my-requests")).to_contain_text("You have no requests yet.")
        assert tab.locator(".onboarding-progress").count() == 0
        number = run.input["ticket"]
        assert tab.goto(f"/tickets/{number}/").status == 404
    finally:
        context.close()

    decide(
        request=ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending"),
        actor=personas.reviewer,
        approve=True,
    )
    drive(run)
    assert run.status == "succeeded"
    page.reload()
    expect(checklist).to_contain_text("5 of 5 done · Finished")
    expect(checklist).to_contain_text("Member of vpn-users: Done")
    assert browser_log.csp_violations() == []
