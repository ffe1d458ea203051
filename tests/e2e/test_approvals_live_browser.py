"""Repairs 4 and 5: two reviewers side by side in a real Chromium.

Each sees new requests and the other's decisions without a reload (the queue polls a stamp and
gets an empty 204 while nothing changed), the counters and the bell follow, a reviewer typing
a reason is not interrupted, and each request is a compact row that expands for its details.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agentops import notifications
from approvals import handlers, services
from approvals.models import ApprovalRequest

pytestmark = pytest.mark.browser
handlers.register("tests.live", lambda request: None)
MARK_DOCUMENT = "() => { window.__agentopsSameDocument = true; }"
SAME_DOCUMENT = "() => window.__agentopsSameDocument === true"


def _open(tenant, n: int, priority: str = "high"):
    return services.request_approval(
        tenant=tenant,
        handler="tests.live",
        handler_ref=str(n),
        subject_type="test",
        subject_id=str(n),
        subject_repr=f"Request {n}",
        action="grant_admin_access",
        arguments={"user_email": f"user{n}@acme.example", "reason": "x" * 300},
        priority=priority,
        auto_assign=False,
    )


def _sign_in(tab, user):
    tab.goto("/login/")
    tab.get_by_label("Username").fill(user.username)
    tab.get_by_label("Password").fill(f"pw-{user.username}")
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture
def fast_polls(settings):
    settings.CONSOLE_QUEUE_POLL_SECONDS = 1
    settings.CONSOLE_BELL_POLL_SECONDS = 1


def test_two_reviewers_see_each_others_decisions_live(
    page, browser, live_server, personas, fast_polls, browser_log, screenshot
):
    tenant = personas.tenant
    first = _open(tenant, 1, "critical")
    other = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    other.set_default_timeout(10_000)
    second_tab = other.new_page()
    try:
        _sign_in(page, personas.reviewer)
        _sign_in(second_tab, personas.admin)
        for tab in (page, second_tab):
            tab.goto("/approvals/")
            expect(tab.locator("article.approval-item")).to_have_count(1)
            tab.evaluate(MARK_DOCUMENT)

        # A new request appears on both screens, with the counter, without a reload.
        second = _open(tenant, 2, "low")
        for tab in (page, second_tab):
            expect(tab.locator("article.approval-item")).to_have_count(2)
            expect(tab.locator("#approval-filters a[data-filter=all] .tab-count")).to_have_text("2")

        # The admin approves the first; the reviewer's queue drops it by itself.
        second_tab.locator(f"#approval-{first.pk}").get_by_role("button", name="Approve").click()
        expect(second_tab.locator("article.approval-item")).to_have_count(1)
        expect(page.locator(f"#approval-{first.pk}")).to_have_count(0)
        expect(page.locator("#approval-filters a[data-filter=decided] .tab-count")).to_have_text(
            "1"
        )
        assert ApprovalRequest.objects.for_tenant(tenant).get(pk=first.pk).status == "approved"

        # The bell follows a new notification on any page.
        notifications.notify(
            tenant=tenant, user=personas.reviewer, verb="approval.assigned", title="New request"
        )
        expect(page.locator("#nav-bell .bell-count")).to_have_text("1")

        # Typing a reason is not interrupted: the refresh waits until the reason is cleared.
        comment = page.locator(f"#comment-{second.pk}")
        comment.fill("Checking with the manager")
        third = _open(tenant, 3, "medium")
        page.wait_for_timeout(2500)
        expect(page.locator("article.approval-item")).to_have_count(1)
        expect(comment).to_have_value("Checking with the manager")
        comment.fill("")
        page.locator("h1").click()
        expect(page.locator(f"#approval-{third.pk}")).to_have_count(1)
        for tab in (page, second_tab):
            assert tab.evaluate(SAME_DOCUMENT), "a live update reloaded the page"
        screenshot("approvals-live.png")
        assert browser_log.csp_violations() == []
    finally:
        other.close()


def test_requests_are_compact_rows_that_expand(page, personas, login, screenshot):
    for n in range(1, 4):
        _open(personas.tenant, n)
    login(personas.reviewer)
    page.goto("/approvals/")
    items = page.locator("article.approval-item")
    expect(items).to_have_count(3)
    first = items.first
    box = first.bounding_box()
    assert box and box["height"] < 160, f"a collapsed request is {box['height']} px tall"
    expect(first.get_by_role("button", name="Approve")).to_be_visible()
    expect(first.locator("pre.args")).to_be_hidden()
    first.get_by_text("Details: arguments, policy reason, evidence").click()
    expect(first.locator("pre.args")).to_be_visible()
    expect(first.locator("pre.args")).to_contain_text("user1@acme.example")
    screenshot("approvals-compact.png")


def test_unchanged_queue_answers_204_and_pins_queries(
    personas, client_for, django_assert_max_num_queries
):
    from approvals.selectors import queue_stamp

    _open(personas.tenant, 1)
    client = client_for(personas.reviewer)
    client.get("/approvals/")
    stamp = queue_stamp(personas.reviewer.memberships.get())
    with django_assert_max_num_queries(6):
        same = client.get("/approvals/", {"part": "live", "stamp": stamp}, HTTP_HX_REQUEST="true")
    assert same.status_code == 204 and same.content == b""
    _open(personas.tenant, 2)
    changed = client.get("/approvals/", {"part": "live", "stamp": stamp}, HTTP_HX_REQUEST="true")
    assert changed.status_code == 200 and changed["HX-Trigger"] == "approvalsChanged"
    assert "Request 2" in changed.content.decode()
    # Another tenant's reviewer: their own (empty) queue's stamp, never this tenant's requests.
    outsider = client_for(personas.outsider).get(
        "/approvals/", {"part": "live", "stamp": ""}, HTTP_HX_REQUEST="true"
    )
    assert "Request 2" not in outsider.content.decode()
