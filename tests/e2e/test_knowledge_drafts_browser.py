"""Reviewing the knowledge manager's drafts in a real Chromium at 390 px: an agent opens the
drafts from the knowledge page, edits one and publishes it; it becomes an indexed source."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from knowledge import drafts
from knowledge.models import ArticleDraft, DraftStatus, Source

pytestmark = pytest.mark.browser

CONTENT = (
    "# Badge reader rejects cards\n\n## Symptoms\n\nEvery card is refused at the dock.\n\n"
    "## Resolution\n\nRe-enter the site code in the access-control console.\n"
)


def test_agent_edits_and_publishes_a_draft_at_390_px(page, personas, login, browser_log):
    draft = drafts.draft_create(
        tenant=personas.tenant,
        ref="REQ0000042",
        title="Badge reader rejects cards",
        content=CONTENT,
        provenance={"ticket": "REQ0000042", "reason": "escalated to a person"},
    )
    page.set_viewport_size({"width": 390, "height": 844})
    login(personas.agent)
    page.goto("/knowledge/")
    page.get_by_role("link", name="Drafts to review").click()
    page.wait_for_url(re.compile(r"/knowledge/drafts/$"))
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_role("link", name="Badge reader rejects cards").click()
    page.wait_for_url(re.compile(rf"/knowledge/drafts/{draft.pk}/$"))
    page.get_by_label("Title").fill("Badge readers: cards refused")
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(re.compile(r"/knowledge/drafts/$"))
    expect(page.get_by_text("No drafts waiting")).to_be_visible()
    draft.refresh_from_db()
    assert draft.status == DraftStatus.PUBLISHED
    source = Source.objects.for_tenant(personas.tenant).get(pk=draft.source_id)
    assert source.title == "Badge readers: cards refused"
    assert not ArticleDraft.objects.for_tenant(personas.other_tenant).exists()
    assert not browser_log.csp_violations() and not browser_log.errors()
