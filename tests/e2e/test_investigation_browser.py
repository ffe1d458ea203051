"""An investigation in a real browser, on a real worker with the offline model.

An agent states a goal on the Investigations page and watches the live state graph and
timeline; the run asks before opening a ticket; a reviewer approves it in a second browser;
the agent's page finishes by itself and links the report, whose findings cite evidence and
whose metric series are drawn. Then the same pages at phone width.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents.connectors.sandbox.seed import seed_sandbox
from agents.engine import agent_config
from agents.models import Run
from tests.e2e.conftest import sign_in
from tests.e2e.test_agent_timeline_browser import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_an_agent_investigates_a_reviewer_approves_the_ticket_and_the_report_shows_it(
    page, browser, live_server, personas, worker_factory, real_delivery, screenshot
):
    config = agent_config(personas.tenant)
    config.llm_backend = "offline"
    config.save()
    seed_sandbox(personas.tenant, [])
    worker_factory()

    sign_in(page, personas.agent)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agent runs").click()
    page.get_by_role("link", name="Investigations").click()
    page.get_by_label("Goal").fill(
        "Investigate error spikes in the last hour and open a ticket if needed"
    )
    page.get_by_role("button", name="Investigate").click()
    page.wait_for_url(re.compile(r"/runs/run-[0-9a-f]+/$"))
    graph = page.locator(".graph li.current")
    expect(graph).to_have_text("Needs approval", timeout=30_000)
    expect(page.locator(".steps")).to_contain_text("list_services")
    expect(page.locator(".steps")).to_contain_text("obs-1")
    screenshot("investigation-waiting.png")

    run = Run.objects.for_tenant(personas.tenant).get(agent_name="investigation")
    reviewer = browser.new_context(base_url=live_server.url).new_page()
    try:
        sign_in(reviewer, personas.reviewer)
        reviewer.goto(f"/runs/{run.run_id}/")
        expect(reviewer.locator(".approval-card")).to_contain_text("create_ticket")
        reviewer.get_by_role("button", name="Approve").click()
        reviewer.wait_for_url(re.compile(rf"/runs/{run.run_id}/$"))
    finally:
        reviewer.context.close()

    # The agent's page finishes without a reload by hand and links the report.
    expect(page.locator(".run-head")).to_contain_text("Succeeded", timeout=30_000)
    page.locator(".page-head").get_by_role("link", name="Report").click()
    expect(page.locator("h1")).to_contain_text("Investigation: Investigate error spikes")
    expect(page.locator(".finding").first).to_contain_text("payments: error rate spiked")
    expect(page.locator(".report-chart svg polyline").first).to_be_attached()
    ticket = wait_for(lambda: Run.objects.for_tenant(personas.tenant).get(pk=run.pk).result)
    number = ticket["report"]["ticket"]
    expect(page.get_by_role("link", name=number)).to_be_visible()
    page.locator(".finding a.mono").first.click()
    expect(page).to_have_url(re.compile(r"#obs-\d+$"))
    screenshot("investigation-report.png")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the report scrolls sideways at 390 px ({width} px wide)"
    screenshot("investigation-report-phone.png")
