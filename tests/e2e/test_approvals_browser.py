"""The approvals queue from the keyboard in a real Chromium: j/k move between requests, a goes
to Approve (Enter confirms), r goes to the reason (Enter rejects), a lone Enter in the reason
never approves; the bell counts a breach notification. No CSP violations, no console errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agentops import notifications
from approvals import handlers, services
from approvals.models import ApprovalRequest

pytestmark = pytest.mark.browser
handlers.register("tests.browser", lambda request: None)


def _open(tenant, n: int, priority: str):
    return services.request_approval(
        tenant=tenant,
        handler="tests.browser",
        handler_ref=str(n),
        subject_type="test",
        subject_id=str(n),
        subject_repr=f"Request {n}",
        action="grant_admin_access",
        arguments={"user_email": f"user{n}@acme.example"},
        priority=priority,
        auto_assign=False,
    )


def test_a_reviewer_works_the_queue_from_the_keyboard(
    page, personas, login, browser_log, screenshot
):
    tenant = personas.tenant
    first = _open(tenant, 1, "critical")
    second = _open(tenant, 2, "high")
    third = _open(tenant, 3, "low")
    notifications.notify(
        tenant=tenant, user=personas.reviewer, verb="approval.breached", title="SLA breached"
    )
    login(personas.reviewer)
    expect(page.locator("#nav-bell .bell-count")).to_have_text("1")
    page.goto("/approvals/")
    items = page.locator("article.approval-item")
    expect(items).to_have_count(3)

    page.keyboard.press("j")
    expect(items.nth(0)).to_be_focused()
    page.keyboard.press("j")
    expect(items.nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(items.nth(0)).to_be_focused()

    # a: focus moves to Approve — nothing is decided until Enter.
    page.keyboard.press("a")
    approve = items.nth(0).get_by_role("button", name="Approve", exact=True)
    expect(approve).to_be_focused()
    assert ApprovalRequest.objects.for_tenant(tenant).get(pk=first.pk).status == "pending"
    page.keyboard.press("Enter")
    expect(page.locator("#approval-results .message-success")).to_contain_text("approved")
    expect(items).to_have_count(2)
    assert ApprovalRequest.objects.for_tenant(tenant).get(pk=first.pk).status == "approved"

    # A lone Enter in the reason does nothing (never approves).
    page.keyboard.press("j")
    comment = items.nth(0).locator("input[name=comment]")
    comment.click()
    comment.fill("typed then Enter")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert ApprovalRequest.objects.for_tenant(tenant).get(pk=second.pk).status == "pending"

    # r: to the reason; typing then Enter rejects.
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    expect(comment).to_be_focused()
    comment.fill("Use the dev VM")
    page.keyboard.press("Enter")
    expect(items).to_have_count(1)
    rejected = ApprovalRequest.objects.for_tenant(tenant).get(pk=second.pk)
    assert rejected.status == "rejected" and rejected.comment == "Use the dev VM"
    assert ApprovalRequest.objects.for_tenant(tenant).get(pk=third.pk).status == "pending"
    screenshot("approvals-keyboard.png")

    # The bell: the notifications page, mark read in place, the count goes away.
    page.locator("#nav-bell").click()
    page.wait_for_url("**/notifications/")
    expect(page.locator(".notification.is-unread")).to_have_count(1)
    page.get_by_role("button", name="Mark read").click()
    expect(page.locator(".notification.is-unread")).to_have_count(0)
    expect(page.locator("#nav-bell .bell-count")).to_have_count(0)
    screenshot("notifications.png")
    assert browser_log.csp_violations() == []
    assert browser_log.errors(ignore=r"favicon\.ico") == []
