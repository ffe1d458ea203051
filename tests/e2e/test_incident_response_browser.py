"""Incident response in a real browser, on a real worker with the offline model.

A critical incident pages the on-call agent, who acknowledges it from the incident page; a
reviewer sees the proposed failover with its blast radius and hypothesis on the approval card
and approves it; the incident resolves by itself. The incident page also fits 390 px.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from agents.engine import agent_config
from agents.models import Run
from incidents.incident_scenarios import generate_incident
from incidents.models import OnCallShift, Ticket
from tests.e2e.conftest import sign_in
from tests.e2e.test_agent_timeline_browser import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_on_call_acknowledges_and_a_reviewer_approves_the_failover(
    page, browser, live_server, personas, worker_factory, real_delivery, screenshot
):
    config = agent_config(personas.tenant)
    config.llm_backend = "offline"
    config.save()
    now = timezone.now()
    OnCallShift.objects.create(
        tenant=personas.tenant, user=personas.agent, starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=8),
    )  # fmt: skip
    worker_factory()
    ticket = generate_incident(tenant=personas.tenant, actor=None, scenario="certificate_expiry")
    wait_for(
        lambda: (
            Run.objects.for_tenant(personas.tenant)
            .filter(subject_id=ticket.number, status="waiting_approval")
            .exists()
        )
    )

    sign_in(page, personas.agent)
    page.goto(f"/tickets/{ticket.number}/")
    pages = page.locator("#pages")
    expect(pages).to_contain_text("paged")
    pages.get_by_role("button", name="Acknowledge page").click()
    expect(page.locator("#pages")).to_contain_text("acknowledged by alex")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the incident page scrolls sideways at 390 px ({width} px)"
    screenshot("incident-page-390.png")

    reviewer = browser.new_context(
        base_url=live_server.url, viewport={"width": 1360, "height": 900}
    )
    tab = reviewer.new_page()
    sign_in(tab, personas.reviewer)
    tab.goto("/approvals/")
    card = tab.locator("article.approval-item").filter(has_text="failover").first
    card.locator("summary").first.click()
    expect(card).to_contain_text("Blast radius:")
    expect(card).to_contain_text("eu-central-1")
    expect(card).to_contain_text("Hypothesis: an expired TLS certificate")
    card.get_by_role("button", name=re.compile("^Approve")).first.click()
    wait_for(
        lambda: (
            Ticket.objects.for_tenant(personas.tenant)
            .filter(pk=ticket.pk, status="resolved")
            .exists()
        ),
        timeout=60,
    )
    reviewer.close()
