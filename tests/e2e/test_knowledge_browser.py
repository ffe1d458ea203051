"""Knowledge in a real Chromium: an agent pastes a new runbook, sees it indexed, and finds it
by meaning (all-MiniLM-L6-v2) and by its exact words (highlighted)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from knowledge.models import Source

pytestmark = pytest.mark.browser

RUNBOOK = """# Door badge reader

## Badge not accepted at the turnstile

When the turnstile flashes red for a valid employee, the access card's encoding has expired.
Re-encode the card at the security desk with the badge printer, then test it on the
turnstile. If it still fails, check that the person is not flagged as a leaver.
"""
DISTRACTORS = {
    "Holiday booking": "# Holidays\n\nVacation days are booked in the HR portal before March.",
    "Expense claims": "# Expenses\n\nReceipts are scanned and submitted with the monthly claim.",
    "Coffee machine": "# Kitchen\n\nDescale the coffee machine every Friday afternoon.",
}


def test_agent_pastes_a_runbook_and_finds_it_by_meaning_and_words(
    page, personas, login, screenshot, browser_log, settings
):
    from knowledge.embeddings import backend_problem
    from knowledge.services import ingest_text

    if backend_problem("minilm"):
        pytest.skip(backend_problem("minilm"))
    settings.KNOWLEDGE_EMBEDDING_BACKEND = "minilm"
    for title, text in DISTRACTORS.items():
        ingest_text(tenant=personas.tenant, kind="guide", title=title, content=text)
    login(personas.agent)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Knowledge").click()
    page.wait_for_url(re.compile(r"/knowledge/$"))
    page.get_by_role("link", name="New source").click()
    page.get_by_label("Title").fill("Badge reader runbook")
    page.get_by_label("Paste the text").fill(RUNBOOK)
    page.get_by_role("button", name="Add and index").click()

    page.wait_for_url(re.compile(r"/knowledge/\d+/$"))
    expect(page.get_by_role("heading", name="Badge reader runbook", level=1)).to_be_visible()
    expect(page.locator("#index-status")).to_contain_text("indexed", timeout=30_000)
    expect(page.locator("#badge-not-accepted-at-the-turnstile")).to_be_visible()
    screenshot("knowledge-source.png")
    source = Source.objects.for_tenant(personas.tenant).get(title="Badge reader runbook")

    # By meaning: no word of the question is in the runbook.
    page.goto("/knowledge/search/")
    page.get_by_label("Question or words").fill("my entry pass stopped opening the gate")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#results article.kb-hit").first
    expect(first).to_contain_text("Badge reader runbook")
    expect(first.get_by_role("link", name="Badge reader runbook")).to_have_attribute(
        "href", f"/knowledge/{source.pk}/#badge-not-accepted-at-the-turnstile"
    )

    # By exact words, highlighted.
    page.get_by_label("Question or words").fill("re-encode turnstile")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#results article.kb-hit").first
    expect(first).to_contain_text("Badge reader runbook")
    expect(first.locator("mark").first).to_have_text(re.compile(r"turnstile|encode", re.I))
    screenshot("knowledge-search.png")

    # The cited link leads to the passage.
    first.get_by_role("link", name="Badge reader runbook").click()
    page.wait_for_url(re.compile(rf"/knowledge/{source.pk}/#badge-not-accepted-at-the-turnstile$"))
    assert not browser_log.csp_violations()
    assert not browser_log.errors()


def test_requester_writing_a_ticket_is_offered_the_article_that_solves_it(
    page, personas, login, screenshot, browser_log, settings
):
    from knowledge.services import ingest_text

    settings.KNOWLEDGE_EMBEDDING_BACKEND = "minilm"
    ingest_text(
        tenant=personas.tenant, kind="runbook", title="Badge reader runbook", content=RUNBOOK
    )
    for title, text in DISTRACTORS.items():
        ingest_text(tenant=personas.tenant, kind="guide", title=title, content=text)
    ingest_text(
        tenant=personas.tenant,
        kind="historical_ticket",
        title="REQ0000042: turnstile for Bob",
        content="# Badge\n\nBob's access card at the turnstile was re-encoded.",
    )
    login(personas.requester)
    page.goto("/tickets/new")
    suggestions = page.locator("#kb-suggestions")
    expect(suggestions).to_be_empty()
    # By meaning: no word of the title is in the runbook.
    page.get_by_label("Title").fill("My entry pass stopped opening the gate")
    expect(suggestions.get_by_role("link").first).to_contain_text("Badge reader runbook")
    expect(suggestions).not_to_contain_text("REQ0000042")  # other people's tickets stay hidden
    screenshot("ticket-form-suggestions.png")
    assert not browser_log.csp_violations()
    assert not browser_log.errors()
