"""Dashboards in a real Chromium: the lead's charts are drawn (Chart.js from static/, no CSP
violation), the filters work, each chart downloads as CSV, it reads at 390 px; the landing page
follows the role; "my work" lists an agent's tickets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from incidents import services
from incidents.analytics import rollups
from incidents.models import Status

pytestmark = pytest.mark.browser


@pytest.fixture
def activity(personas, make_ticket):
    for n in range(3):
        ticket = make_ticket(personas.tenant, personas.requester, title=f"Printer {n}")
        if n:
            services.ticket_transition(
                ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Fixed."
            )
    rollups.refresh_recent(personas.tenant)


def test_lead_dashboard_draws_charts_and_downloads_csv(
    page, personas, activity, login, browser_log, screenshot
):
    login(personas.admin, landing=True)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    charts = page.locator("canvas[data-chart]")
    expect(charts).to_have_count(7)
    expect(page.locator("canvas[data-drawn=true]")).to_have_count(7)
    expect(page.locator('[data-kpi="backlog"]')).to_have_text("1")
    # The figures behind a chart, as a table and as CSV.
    volume = page.locator("#chart-volume")
    volume.get_by_text("Show as a table").click()
    expect(volume.locator("tbody tr").last).to_contain_text("3")
    with page.expect_download() as download:
        volume.get_by_role("link", name="CSV").click()
    path = download.value.path()
    text = Path(path).read_text(encoding="utf-8")
    assert text.splitlines()[0] == "day,opened,resolved,backlog"
    assert text.strip().splitlines()[-1].endswith(",3,2,1")
    # Filters: a shorter period reloads with it.
    page.locator("#id_period").select_option("7")
    expect(page).to_have_url(re.compile(r"period=7"))
    expect(page.locator(".meta").first).to_contain_text("last 7 days")
    screenshot("dashboard.png")
    assert browser_log.csp_violations() == []
    assert browser_log.errors(ignore=r"favicon\.ico") == []


def test_dashboard_at_390_px(page, personas, activity, login):
    page.set_viewport_size({"width": 390, "height": 844})
    login(personas.admin, landing=True)
    expect(page.locator("canvas[data-drawn=true]")).to_have_count(7)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_agent_lands_on_my_work(page, personas, make_ticket, login):
    ticket = make_ticket(personas.tenant, personas.requester, title="Monitor flickers")
    services.ticket_assign(ticket=ticket, actor=personas.agent, assignee=personas.agent)
    login(personas.agent, landing=True)
    expect(page).to_have_url(re.compile(r"/my-work/$"))
    expect(page.locator("#assigned")).to_contain_text("Monitor flickers")
    page.locator("#assigned").get_by_role("link", name=ticket.number).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monitor flickers")


def test_requester_lands_on_the_portal(page, personas, login):
    login(personas.requester, landing=True)
    expect(page).to_have_url(re.compile(r"/portal/$"))
    expect(page.get_by_role("heading", name="How can we help?")).to_be_visible()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")
    ).to_have_count(0)
