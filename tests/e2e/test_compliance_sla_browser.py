"""Compliance report and the business-hours SLA clock in a real Chromium: the chart is drawn
(no CSP violation), the PDF and CSV download, a signed copy is kept and verifies, and both
pages read at 390 px without sideways scrolling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from agentops import audit
from incidents.models import BusinessCalendar, TicketSLA
from incidents.services import ticket_transition

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
NO_SIDEWAYS = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def refusal(personas):
    audit.record(
        tenant=personas.tenant,
        actor=personas.reviewer,
        action="approval.refused",
        target_type="approval",
        target_id="7",
        target_repr="grant_admin_access for REQ0000007 " + "a-very-long-argument-" * 6,
        metadata={"reason": "You requested this action: another reviewer must decide it."},
    )


def test_an_auditor_reads_downloads_and_keeps_a_signed_report(
    page, personas, refusal, login, browser_log, live_server
):
    login(personas.auditor)
    page.get_by_role("link", name="Audit").first.click()
    page.get_by_role("link", name="Compliance report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Compliance report")
    expect(page.locator("canvas[data-chart][data-drawn=true]")).to_have_count(1)
    refusals = page.locator("#section-refusals")
    expect(refusals).to_contain_text("riley")
    expect(refusals).to_contain_text("another reviewer must decide it")
    with page.expect_download() as download:
        page.get_by_role("link", name="PDF").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF-")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    assert "Four-eyes refusals" in Path(download.value.path()).read_text(encoding="utf-8")
    page.get_by_role("button", name=re.compile("Keep a signed copy")).click()
    expect(page).to_have_url(re.compile(r"/compliance/runs/run-"))
    for _ in range(20):  # the kept copy is written by the agent's step (a task)
        if page.get_by_text("Verified ✓").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.get_by_text("Verified ✓")).to_be_visible()
    assert browser_log.csp_violations() == []
    assert browser_log.errors(ignore=r"favicon\.ico") == []


def test_the_compliance_page_at_390_px(page, personas, refusal, login):
    page.set_viewport_size(PHONE)
    login(personas.auditor)
    page.goto("/compliance/")
    expect(page.locator("#section-refusals td[data-label=who]").first).to_have_text("riley")
    expect(page.locator("canvas[data-drawn=true]")).to_have_count(1)
    assert page.evaluate(NO_SIDEWAYS)


def test_the_sla_clock_on_the_ticket_page_and_queue_at_390_px(page, personas, make_ticket, login):
    BusinessCalendar.objects.create(
        tenant=personas.tenant, name="Lisbon office", timezone="Europe/Lisbon"
    )
    running = make_ticket(personas.tenant, personas.requester, title="VPN drops", priority="high")
    clock = TicketSLA.objects.for_tenant(personas.tenant).get(ticket=running)
    TicketSLA.objects.for_tenant(personas.tenant).filter(pk=clock.pk).update(
        consumed_seconds=7 * 3600
    )
    waiting = make_ticket(personas.tenant, personas.requester, title="Waiting for Robin")
    ticket_transition(ticket=waiting, actor=personas.agent, status="on_hold")
    page.set_viewport_size(PHONE)
    login(personas.agent)
    page.goto(f"/tickets/{running.number}/")
    clock_facts = page.locator(".sla-clock")
    expect(clock_facts).to_contain_text("at risk")
    expect(clock_facts).to_contain_text("business hours used")
    expect(clock_facts).to_contain_text("Lisbon office")
    expect(clock_facts.locator("progress")).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS)
    page.goto("/tickets/")
    expect(page.locator("tr", has_text="Waiting for Robin").locator(".sla")).to_contain_text(
        "paused"
    )
    assert page.evaluate(NO_SIDEWAYS)
