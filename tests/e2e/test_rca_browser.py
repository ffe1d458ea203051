"""An ingested run replayed in Chromium, and its root-cause analysis started from the page.

A real Celery worker runs the RCA; the panel updates by itself and stops polling when done.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agentops.celery import app as celery_app
from agents.telemetry.schemas import parse_run
from agents.telemetry.services import ingest_runs
from tests.agents.telemetry.payloads import seed_run
from tests.agents.telemetry.test_metrics import shifted

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def test_replay_and_rca_button(
    page, login, personas, worker_factory, real_delivery, browser_log, screenshot
):
    payload = shifted(2, seed_run())  # two hours ago, so the metrics window holds it
    payload["tool_calls"][1]["result_summary"] = "<b>in transit</b>"  # untrusted text stays text
    ingest_runs(tenant=personas.tenant, runs=[parse_run(payload)])
    worker_factory()
    login(personas.agent)
    page.goto("/runs/?origin=ingested")
    page.get_by_role("link", name="run-001-sufficient").click()
    expect(page.locator(".waterfall .wf-row")).to_have_count(7)
    expect(page.locator("#ev_tool_call-001")).to_be_visible()
    expect(page.get_by_text("<b>in transit</b>", exact=False)).to_be_visible()
    page.locator(".wf-label", has_text="order_lookup_api").first.click()
    assert page.evaluate("location.hash") == "#ev_tool_call-001"

    page.get_by_role("button", name="Analyse this run").click()
    expect(page.locator("#rca .rca-category")).to_have_text("tool_schema_mismatch", timeout=30_000)
    expect(page.locator("#rca")).not_to_have_attribute("hx-trigger", "every 1s")
    page.locator("#rca .rca-hypotheses a", has_text="ev_guard_guard-001").click()
    assert page.evaluate("location.hash") == "#ev_guard_guard-001"
    screenshot("rca-report.png")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#rca .rca-category")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
        "window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + "
        "Math.round(e.getBoundingClientRect().width))"
    )
    assert overflow <= 1, f"the page is {overflow}px wider than a 390px screen: {wide}"
    screenshot("rca-report-390.png")
    page.goto("/runs/-/metrics?hours=24")
    expect(page.locator(".hbar-row", has_text="order_lookup_api")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    screenshot("run-metrics-390.png")
    assert browser_log.errors() == [] and browser_log.csp_violations() == []
