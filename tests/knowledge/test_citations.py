"""The Resolution step cites the knowledge it found; retrieval failing never fails the run."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents import engine
from agents.connectors.sandbox.models import DirectoryUser
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply

LOCKOUT = """# Account lockout

## Unlock a locked account

When an account is locked after too many failed sign-in attempts, verify the requester and
run unlock_account for their e-mail address. Ask them to sign in again within ten minutes.
"""
GLOBEX_ONLY = "# Locked accounts at Globex\n\nGlobex unlocks locked accounts with a secret lever."


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


@pytest.fixture
def locked_out(personas):
    DirectoryUser.objects.create(
        tenant=personas.tenant,
        email=personas.requester.email,
        display_name="Robin",
        locked=True,
        failed_login_attempts=5,
    )


def run_ticket(personas, model):
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="I'm locked out of my account",
        description="My account got locked after too many failed sign-in attempts.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    for _ in range(10):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return ticket, run


def test_resolve_step_records_citations_and_the_timeline_links_them(
    personas, model, locked_out, ingest, client_for
):
    doc = ingest(personas.tenant, "Account lockout runbook", LOCKOUT)
    ingest(personas.other_tenant, "Globex lockout", GLOBEX_ONLY)
    ticket, run = run_ticket(personas, model)
    assert run.status == "succeeded"
    resolve = run.steps.get(state="resolve")
    citations = resolve.detail["citations"]
    assert citations and citations[0]["title"] == "Account lockout runbook"
    assert citations[0]["heading"] == "Account lockout > Unlock a locked account"
    assert (
        citations[0]["url"]
        == reverse("knowledge:source-detail", args=[doc.source_id]) + "#unlock-a-locked-account"
    )
    assert all("Globex" not in c["title"] for c in citations)
    assert run.steps.get(state="plan").detail["citations"] == citations
    # The offline/scripted model gets no knowledge block; only Claude does.
    assert "<knowledge>" not in model.requests[1]["messages"][0]["content"]
    page = client_for(personas.agent).get(reverse("incidents:ticket-detail", args=[ticket.number]))
    assert citations[0]["url"].encode() in page.content and b"Cited knowledge" in page.content


def test_claude_gets_the_passages_as_untrusted_reference(personas, model, locked_out, ingest):
    ingest(personas.tenant, "Account lockout runbook", LOCKOUT)
    model.name = "anthropic"
    _, run = run_ticket(personas, model)
    prompt = model.requests[1]["messages"][0]["content"]
    assert "<knowledge>" in prompt and "Untrusted reference text" in prompt
    assert "run unlock_account for their e-mail address" in prompt
    assert run.status == "succeeded"


def test_retrieval_failure_never_fails_the_run(personas, model, locked_out, ingest, monkeypatch):
    from knowledge import retrieval

    ingest(personas.tenant, "Account lockout runbook", LOCKOUT)

    def broken(*args, **kwargs):
        raise RuntimeError("vector index unavailable")

    monkeypatch.setattr(retrieval, "search", broken)
    _, run = run_ticket(personas, model)
    assert run.status == "succeeded"
    assert run.steps.get(state="resolve").detail["citations"] == []


def test_no_knowledge_no_citations(personas, model, locked_out):
    _, run = run_ticket(personas, model)
    assert run.status == "succeeded" and run.steps.get(state="resolve").detail["citations"] == []


def test_escalation_cites_what_may_help_the_person(personas, model, ingest):
    ingest(personas.tenant, "Account lockout runbook", LOCKOUT)
    model.responses += [triage_reply(decision="human")]
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="I'm locked out of my account",
        description="Locked after too many failed sign-in attempts.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    for _ in range(5):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    assert run.status == "escalated"
    cited = run.steps.get(state="escalate").detail["citations"]
    assert cited and cited[0]["title"] == "Account lockout runbook"


def test_with_the_offline_model_the_next_ticket_on_the_topic_cites_the_new_runbook(
    personas, ingest, client_for
):
    """The "done when" flow: a pasted runbook is cited by the next ticket's run (the offline
    model, no scripting)."""
    doc = ingest(
        personas.tenant,
        "Badge reader runbook",
        "# Door badge reader\n\n## Badge not accepted\n\nWhen the turnstile rejects a valid "
        "badge, re-encode the access card at the security desk.",
    )
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="My badge is not accepted at the turnstile",
        description="The door badge reader flashes red every morning.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    for _ in range(10):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    assert run.status in ("succeeded", "escalated")
    cited = [c for s in run.steps.all() for c in (s.detail or {}).get("citations", [])]
    assert cited and {c["source_id"] for c in cited} == {doc.source_id}
    page = client_for(personas.agent).get(reverse("incidents:ticket-detail", args=[ticket.number]))
    assert b"Badge reader runbook" in page.content
