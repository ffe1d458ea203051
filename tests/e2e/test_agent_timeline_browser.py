"""The live agent timeline in a real browser, with a real Celery worker and the offline model.

A requester asks for admin rights; the agent triages, plans and parks the run for approval.
A reviewer opens the ticket, approves in the timeline, and — without reloading by hand —
watches the run finish and the ticket become resolved.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from agentops.celery import app as celery_app
from agents.connectors.sandbox.models import DirectoryUser
from agents.engine import agent_config
from agents.models import Run
from incidents.services import ticket_create

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def wait_for(predicate, timeout=40.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_reviewer_approves_and_watches_the_run_finish_live(
    page, login, personas, worker_factory, real_delivery, screenshot
):
    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.save()
    user = DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
    )
    worker_factory()
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Need admin rights on my workstation",
        description="Please grant me local admin rights so I can install developer tools myself.",
        source="portal",
    )
    wait_for(
        lambda: (
            Run.objects.for_tenant(personas.tenant)
            .filter(subject_id=ticket.number, status="waiting_approval")
            .exists()
        )
    )

    login(personas.reviewer)
    page.goto(f"/tickets/{ticket.number}/")
    expect(page.get_by_text("Approval needed")).to_be_visible()
    expect(page.locator(".run-head")).to_contain_text("Waiting for approval")
    screenshot("agent-waiting-for-approval.png")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(rf"/tickets/{ticket.number}/$"))
    # No manual reload from here: the polled timeline updates, then reloads the page once.
    expect(page.locator(".run-head")).to_contain_text("Succeeded", timeout=30_000)
    expect(page.locator("#sidebar")).to_contain_text("Resolved", timeout=10_000)
    expect(
        page.locator(
            "#timeline-"
            + str(Run.objects.for_tenant(personas.tenant).get(subject_id=ticket.number).pk)
        )
    ).to_contain_text("grant_admin_access")
    screenshot("agent-resolved-live.png")
    user.refresh_from_db()
    assert user.is_admin is True
